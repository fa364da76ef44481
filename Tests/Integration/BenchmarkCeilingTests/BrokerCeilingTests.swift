@testable import Benchmark
import BrokerTestSupport
import Foundation
import Messaging
import Testing

/// The ceiling against a real broker: every message goes through both queues, and the queues are gone afterwards.
@Suite(.serialized)
struct BrokerCeilingTests {
    func settings(_ url: String, messages: Int) -> BrokerCeiling.Settings {
        BrokerCeiling.Settings(
            url: url, queueType: .classic, messages: messages, bodyBytes: 200, prefetch: 64, batchSize: 100)
    }

    func ceilingQueues(_ broker: TestBroker) async throws -> [String] {
        let output = try await broker.ctl(["-q", "list_queues", "--no-table-headers", "name"])
        return output.split(separator: "\n").map(String.init).filter { $0.hasPrefix("bench_ceiling_") }
    }

    /// 1,050 is not a multiple of the batch (100) nor of the acks' half window (32): the last partial batch and
    /// the last `multiple` ack must still be sent.
    @Test func rabbitMQCMovesEveryMessageThroughBothQueuesAndDeletesThem() async throws {
        let broker = try await TestBroker.shared()
        let result = try await BrokerCeiling.runRabbitMQC(settings(broker.url, messages: 1_050))
        #expect(result.messages == 1_050)
        #expect(result.seconds > 0)
        #expect(result.publishSeconds > 0 && result.publishSeconds <= result.seconds)
        #expect(try await ceilingQueues(broker).isEmpty)
    }

    /// Bodies larger than a frame (131,072 bytes) arrive in several body frames: the forwarder and the drain,
    /// which read frames without copying, must gather them and forward them whole.
    @Test func rabbitMQCForwardsBodiesSpanningSeveralFrames() async throws {
        let broker = try await TestBroker.shared()
        var large = settings(broker.url, messages: 30)
        large.bodyBytes = 300_000
        large.batchSize = 7
        let result = try await BrokerCeiling.runRabbitMQC(large)
        #expect(result.messages == 30)
        #expect(try await ceilingQueues(broker).isEmpty)
    }

    @Test func theMessagingModuleInTheSameShapeMovesEveryMessage() async throws {
        let broker = try await TestBroker.shared()
        let result = try await BrokerCeiling.runMessaging(settings(broker.url, messages: 1_050)) { _ in }
        #expect(result.messages == 1_050)
        #expect(result.seconds > 0)
        #expect(try await ceilingQueues(broker).isEmpty)
    }

    @Test func anUnreachableBrokerIsAClearError() async throws {
        _ = try await TestBroker.shared()  // refuses in a unit-test run, like every broker test
        let error = await #expect(throws: BenchmarkError.self) {
            try await BrokerCeiling.runRabbitMQC(settings("amqp://guest:guest@127.0.0.1:1/%2f", messages: 10))
        }
        #expect(error?.description.contains("connect to 127.0.0.1:1") == true)
    }
}
