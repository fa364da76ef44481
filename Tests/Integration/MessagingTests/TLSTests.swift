import BrokerTestSupport
import Foundation
import Logging
import Synchronization
import TestSupport
import Testing

@testable import Messaging

/// `amqps://` against a private node whose TLS listener uses certificates made by the test with openssl. One node
/// serves the whole suite (starting one takes seconds): it requires a client certificate signed by the test CA
/// (`verify_peer`, `fail_if_no_peer_cert`), so every case sends the client certificate except the one that checks
/// the refusal. The node is stopped when the suite ends.
@Suite(.tlsNode)
struct TLSTests {
    @Test func publisherAndConsumerExchangeAConfirmedMessageOverTLS() async throws {
        let node = try TLSNode.require()
        let queue = uniqueQueueName("tls")
        let publisher = Publisher(
            configuration: try node.configuration("tls-pub"), declaring: [queue], logger: quietLogger)
        let consumer = Consumer(configuration: try node.configuration("tls-con"), queue: queue, logger: quietLogger)
        try await withServices(publisher, consumer) {
            let message = OutboundMessage(
                queue: queue, body: Array("{\"over\":\"tls\"}".utf8),
                properties: MessageProperties(messageID: "tls-1", type: "user_created"))
            try await publisher.publish([message])  // returns once the broker confirmed it
            let delivery = try await nextDelivery(from: consumer)
            #expect(delivery.body == message.body)
            #expect(delivery.properties.messageID == "tls-1")
            consumer.ack(delivery)
            try await eventually("acked") { try await node.broker.messageCount(queue: queue) == 0 }

            // The broker lists both connections as TLS.
            let connections = try await node.broker.ctl([
                "-q", "list_connections", "--no-table-headers", "ssl", "client_properties",
            ])
            let ours = connections.split(separator: "\n").filter {
                $0.contains("\"tls-pub\"") || $0.contains("\"tls-con\"")
            }
            #expect(ours.count == 2 && ours.allSatisfy { $0.hasPrefix("true") }, "\(ours)")
        }
    }

    @Test func aCAThatDidNotSignTheBrokersCertificateFailsVerification() async throws {
        let node = try TLSNode.require()
        var wrongCA = try node.configuration("tls-wrong-ca")
        wrongCA.caCertificatePath = node.certificates.otherCAFile

        let error = try #require(await attemptConnection(wrongCA))
        #expect(error.code == .tlsError, "\(error)")
        #expect(error.detail.contains("not signed by a CA in the CA file"), "\(error)")

        // A publisher keeps retrying, never connects, and logs why (without the password).
        let capture = LogCapture()
        let publisher = Publisher(configuration: wrongCA, declaring: [], logger: capture.logger)
        try await withServices(publisher) {
            try await eventually("a failed attempt was logged") {
                capture.lines.contains { $0.contains("failed (attempt") && $0.contains("tlsError") }
            }
            #expect(!publisher.isConnected)
            #expect(try await node.broker.connectionIDs(named: "tls-wrong-ca").isEmpty)
        }
        #expect(!capture.lines.contains { $0.contains("guest:guest") }, "the password was logged")
    }

    @Test func theBrokerRefusesAClientWithoutACertificateAndAcceptsOneWithIt() async throws {
        let node = try TLSNode.require()
        var anonymous = try node.configuration("tls-anonymous")
        anonymous.clientCertificatePath = nil
        anonymous.clientKeyPath = nil
        let refused = try #require(await attemptConnection(anonymous))
        #expect(refused.code == .tlsError, "\(refused)")
        #expect(refused.detail.contains("client certificate"), "\(refused)")

        let accepted = await attemptConnection(try node.configuration("tls-with-cert"))
        #expect(accepted == nil, "\(String(describing: accepted))")
    }

    @Test func aHostNameTheCertificateDoesNotNameFailsVerification() async throws {
        let node = try TLSNode.require()
        // Same broker, same trusted CA, but addressed as 127.0.0.1. rabbitmq-c 0.11 matches the host against the
        // certificate's DNS names only (not its IP address entries), so this is a name the certificate lacks.
        var byAddress = try node.configuration("tls-by-address")
        byAddress.host = "127.0.0.1"
        let error = try #require(await attemptConnection(byAddress))
        #expect(error.code == .tlsError, "\(error)")
        #expect(error.detail.contains("not valid for the host name '127.0.0.1'"), "\(error)")
    }

    @Test func amqpsToAPlainAMQPPortFailsTheHandshake() async throws {
        let node = try TLSNode.require()
        var plainPort = try node.configuration("tls-plain-port")
        plainPort.port = try BrokerConfiguration(url: node.broker.url).port
        let error = try #require(await attemptConnection(plainPort))
        #expect(error.code == .tlsError, "\(error)")
        #expect(error.detail.contains("a TLS port"), "\(error)")
    }

    @Test func filesThatCannotBeLoadedAreTLSErrors() async throws {
        let node = try TLSNode.require()
        let notPEM = node.certificates.directory + "/openssl.cnf"

        var badCA = try node.configuration("tls-bad-ca")
        badCA.caCertificatePath = notPEM
        let caError = try #require(await attemptConnection(badCA))
        #expect(caError.code == .tlsError && caError.detail.contains(notPEM), "\(caError)")

        var mismatched = try node.configuration("tls-mismatched-key")
        mismatched.clientKeyPath = node.certificates.serverKeyFile  // not the client certificate's key
        let keyError = try #require(await attemptConnection(mismatched))
        #expect(keyError.code == .tlsError && keyError.detail.contains("client certificate"), "\(keyError)")

        var halfClient = try node.configuration("tls-half")
        halfClient.clientKeyPath = nil
        let halfError = try #require(await attemptConnection(halfClient))
        #expect(halfError.code == .invalidConfiguration, "\(halfError)")
    }
}

// MARK: - The node

/// The suite's broker with a TLS listener, and the files it was made with.
struct TLSNode: Sendable {
    let broker: TestBroker
    let certificates: TestCertificates
    let tlsPort: Int

    /// The node of the running ``TLSTests`` suite.
    @TaskLocal static var current: TLSNode?

    static func require() throws -> TLSNode {
        guard let current else { throw TestFailure("no TLS node: the suite needs the .tlsNode trait") }
        return current
    }

    static func start() async throws -> TLSNode {
        let certificates = try await TestCertificates.make()
        let port = try freePort()
        let broker = try await TestBroker.startPrivate(
            extraConfiguration: certificates.brokerConfiguration(port: port, requireClientCertificate: true))
        return TLSNode(broker: broker, certificates: certificates, tlsPort: port)
    }

    /// `amqps://guest:guest@localhost:PORT/%2f` trusting the test CA and sending the client certificate.
    func configuration(_ connectionName: String) throws -> BrokerConfiguration {
        var configuration = try BrokerConfiguration(url: "amqps://guest:guest@localhost:\(tlsPort)/%2f")
        configuration.caCertificatePath = certificates.caFile
        configuration.clientCertificatePath = certificates.clientCertificateFile
        configuration.clientKeyPath = certificates.clientKeyFile
        configuration.connectionName = connectionName
        configuration.reconnectDelay = .milliseconds(50) ... .milliseconds(500)
        return configuration
    }
}

/// Starts one ``TLSNode`` around the whole suite and stops it afterwards, also when a test failed.
struct TLSNodeTrait: SuiteTrait, TestScoping {
    func provideScope(
        for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void
    ) async throws {
        let node = try await TLSNode.start()
        do {
            try await TLSNode.$current.withValue(node) { try await function() }
        } catch {
            try? await node.broker.stop()
            throw error
        }
        try await node.broker.stop()
        try? FileManager.default.removeItem(atPath: node.certificates.directory)
    }
}

extension Trait where Self == TLSNodeTrait {
    /// A private broker with a TLS listener for the suite (see ``TLSNode``).
    static var tlsNode: Self { Self() }
}

// MARK: - Helpers

/// Opens (and closes again) one connection on a background thread, as the connection thread does; returns the error,
/// or nil once logged in with channel 1 open. Bounded by the library's socket and RPC timeouts.
private func attemptConnection(_ configuration: BrokerConfiguration) async -> MessagingError? {
    await withCheckedContinuation { continuation in
        Thread.detachNewThread {
            do throws(MessagingError) {
                let connection = try AMQPConnection.open(configuration)
                connection.sendClose(timeout: .seconds(5))
                connection.abandon()
                continuation.resume(returning: nil)
            } catch {
                continuation.resume(returning: error)
            }
        }
    }
}

private let quietLogger: Logger = {
    var logger = Logger(label: "TLSTests")
    logger.logLevel = .notice
    return logger
}()


/// The next delivery, or a failure after `timeout`.
private func nextDelivery(from consumer: Consumer, timeout: Duration = .seconds(20)) async throws -> Delivery {
    let stream = consumer.deliveries
    return try await withThrowingTaskGroup(of: Delivery?.self) { group in
        group.addTask {
            for await delivery in stream { return delivery }
            return nil
        }
        group.addTask {
            try await Task.sleep(for: timeout)
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let delivery = first else {
            throw TestFailure("no delivery within \(timeout)")
        }
        return delivery
    }
}

/// Log lines kept in memory, to check what a component logged.
private final class LogCapture: Sendable {
    private let storage = Mutex<[String]>([])

    var lines: [String] { storage.withLock { $0 } }

    var logger: Logger {
        var logger = Logger(label: "TLSTests") { _ in Handler(capture: self) }
        logger.logLevel = .info
        return logger
    }

    fileprivate func append(_ line: String) { storage.withLock { $0.append(line) } }

    private struct Handler: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .info

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let all = metadata.merging(event.metadata ?? [:]) { $1 }
            let rendered = all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            capture.append("\(event.level) \(event.message) \(rendered)")
        }
    }
}
