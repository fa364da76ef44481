import Logging
import ServiceLifecycle
import Synchronization
import Testing

@testable import ServiceRuntime

/// The start and shutdown order that `ServiceStages` produces, checked on a real `ServiceGroup`.
struct ServiceStagesTests {
    /// Records when it starts and when its graceful shutdown ends.
    private struct Recorder: Service {
        let name: String
        let log: Log

        func run() async throws {
            log.entries.withLock { $0.append("start \(name)") }
            // Runs until the group's graceful shutdown reaches this service.
            try await gracefulShutdown()
            log.entries.withLock { $0.append("stop \(name)") }
        }
    }

    private final class Log: Sendable {
        let entries = Mutex<[String]>([])
    }

    @Test func listenersStopFirstThenWorkersThenConnections() async throws {
        let log = Log()
        func recorder(_ name: String) -> Recorder { Recorder(name: name, log: log) }
        // Written in an order that would be wrong as a plain array.
        var stages = ServiceStages(listeners: [recorder("server"), recorder("sighup")])
        stages.workers = [recorder("loop")]
        stages.connections = [recorder("publisher"), recorder("consumer")]
        #expect(stages.inStartOrder.count == 5)

        let group = ServiceGroup(
            configuration: .init(
                services: stages.inStartOrder.map { .init(service: $0) }, gracefulShutdownSignals: [],
                cancellationSignals: [], logger: Logger(label: "stages-test")))
        let running = Task { try await group.run() }
        let deadline = ContinuousClock.now + .seconds(10)
        while log.entries.withLock({ $0.count }) < 5, ContinuousClock.now < deadline { await Task.yield() }
        await group.triggerGracefulShutdown()
        try await running.value

        let stops = log.entries.withLock { $0 }.filter { $0.hasPrefix("stop") }
        #expect(stops == ["stop sighup", "stop server", "stop loop", "stop consumer", "stop publisher"])
    }
}
