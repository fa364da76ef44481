import Foundation
import Testing

@testable import Messaging

/// `RABBITMQ_URL` naming several nodes of one cluster, and the queue type.
struct ClusterConfigurationTests {
    @Test func aCommaSeparatedListNamesEveryNodeInOrder() throws {
        let configuration = try BrokerConfiguration(
            url: "amqp://app:pw@rabbit1:5672/prod, amqp://app:pw@rabbit2:5673/prod,amqp://app:pw@10.0.0.3/prod")
        #expect(
            configuration.nodes == [
                .init(host: "rabbit1", port: 5672), .init(host: "rabbit2", port: 5673),
                .init(host: "10.0.0.3", port: 5672),
            ])
        #expect(configuration.host == "rabbit1" && configuration.port == 5672)
        #expect(configuration.user == "app" && configuration.password == "pw" && configuration.virtualHost == "prod")
        #expect(configuration.selectingNode(1).nodes == [.init(host: "rabbit2", port: 5673)])
        #expect(configuration.selectingNode(1).password == "pw")
    }

    @Test func aSingleURLIsOneNode() throws {
        #expect(try BrokerConfiguration(url: "amqp://guest:guest@localhost:5672/%2f").nodes.count == 1)
    }

    @Test func aCommaInsideAPasswordDoesNotSplitTheList() throws {
        let configuration = try BrokerConfiguration(url: "amqp://app:a,b@rabbit1/%2f,amqp://app:a,b@rabbit2/%2f")
        #expect(configuration.password == "a,b")
        #expect(configuration.nodes.map(\.host) == ["rabbit1", "rabbit2"])
    }

    @Test func everyNodesPasswordIsMaskedWhereverTheConfigurationIsPrinted() throws {
        let secret = "s3cret-\(UUID().uuidString.prefix(8))"
        let configuration = try BrokerConfiguration(
            url: "amqps://alice:\(secret)@r1:5671/v,amqps://alice:\(secret)@r2:5671/v")
        #expect(configuration.redactedURL == "amqps://alice:***@r1:5671/v,amqps://alice:***@r2:5671/v")
        #expect(configuration.redactedURL(node: 1) == "amqps://alice:***@r2:5671/v")
        var dumped = ""
        dump(configuration, to: &dumped)
        for printed in ["\(configuration)", String(reflecting: configuration), dumped] {
            #expect(!printed.contains(secret), "\(printed)")
        }
    }

    @Test(arguments: [
        ("amqp://u:p@a/v,amqps://u:p@b/v", "scheme"),
        ("amqp://u:p@a/v,amqp://w:p@b/v", "user"),
        ("amqp://u:p@a/v,amqp://u:q@b/v", "password"),
        ("amqp://u:p@a/v,amqp://u:p@b/w", "vhost"),
        ("amqp://u:p@a/v,amqp://b/v", "user, password"),
        ("amqp://u:p@a/v?heartbeat=5,amqp://u:p@b/v", "heartbeat"),
    ])
    func nodesThatDisagreeOnWhatAClusterSharesAreRefused(url: String, difference: String) {
        let error = #expect(throws: MessagingError.self) { try BrokerConfiguration(url: url) }
        #expect(error?.code == .invalidConfiguration)
        #expect(error?.detail.contains("node 2 of 2") == true, "\(String(describing: error))")
        #expect(error?.detail.contains("its \(difference) differ") == true, "\(String(describing: error))")
        #expect(error?.detail.contains(":p@") == false && error?.detail.contains(":q@") == false)
    }

    @Test(arguments: [
        ("amqp://a/v,", "node 2 of 2", "empty"),
        ("amqp://a/v,,amqp://b/v", "node 2 of 3", "empty"),
        ("amqp://a/v,amqp://b:99999/v", "node 2 of 2", "out of range"),
        ("amqp://a/v, amqps://b/v/x", "node 2 of 2", "path segment"),
    ])
    func aBadNodeURLIsNamedByItsPlaceInTheList(url: String, node: String, problem: String) {
        let error = #expect(throws: MessagingError.self) { try BrokerConfiguration(url: url) }
        #expect(error?.detail.contains(node) == true, "\(String(describing: error))")
        #expect(error?.detail.contains(problem) == true, "\(String(describing: error))")
    }

    @Test func theQueueTypeIsClassicUnlessSetAndShowsInTheDescription() throws {
        var configuration = try BrokerConfiguration(url: "amqp://guest:guest@localhost/%2f")
        #expect(configuration.queueType == .classic)
        #expect(!"\(configuration)".contains("queues="))
        configuration.queueType = .quorum
        #expect("\(configuration)".hasSuffix(" queues=quorum"))
    }
}

/// The one line a 406 on `queue.declare` becomes.
struct QueueConflictTests {
    @Test func aClassicQueueDeclaredAsQuorumNamesBothTypesAndTheMigrations() {
        let conflict = QueueConflict(
            queue: "queue_order", declared: .quorum,
            brokerText:
                "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'queue_order' in vhost '/': received"
                + " the value 'quorum' of type 'longstr' but current is none")
        #expect(conflict.existingType == "classic")
        let error = conflict.error
        #expect(error.code == .queueConflict)
        #expect(!error.detail.contains("\n"))
        for part in [
            "queue 'queue_order' exists as a classic queue but this service declares it as a quorum queue",
            "--default-queue-type quorum", "shovel", "draining", "PRECONDITION_FAILED",
        ] {
            #expect(error.detail.contains(part), "\(part) in \(error.detail)")
        }
    }

    @Test func aQuorumQueueDeclaredAsClassicNamesItsType() {
        let conflict = QueueConflict(
            queue: "queue_dispatch", declared: .classic,
            brokerText:
                "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'queue_dispatch' in vhost '/':"
                + " received none but current is the value 'quorum' of type 'longstr'")
        #expect(conflict.existingType == "quorum")
        #expect(
            conflict.error.detail.hasPrefix(
                "queue 'queue_dispatch' exists as a quorum queue but this service declares it as a classic queue"))
    }

    @Test func otherArgumentsAreSaidAsSuch() {
        let conflict = QueueConflict(
            queue: "q", declared: .classic,
            brokerText: "PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue 'q' in vhost '/'")
        #expect(conflict.existingType == nil)
        #expect(conflict.error.detail.hasPrefix("queue 'q' exists with other arguments than this service declares"))
    }
}
