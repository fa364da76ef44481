import BrokerTestSupport
import Foundation
import Logging
import Messaging
import SQLiteStorage
import TestSupport
import Testing


/// The three real executables, started as processes against the test broker, in a virtual host of their
/// own (so tests running in parallel do not share queues) and with databases in a temporary directory.
final class RunningSystem: Sendable {
    let directory: String
    let brokerURL: String
    let userPort: Int
    let orderPort: Int
    let notificationPort: Int
    let user: ServiceProcess
    let notification: ServiceProcess
    let order: ServiceProcess
    /// The type the services declare their queues with (`AMQP_QUEUE_TYPE`); the broker helpers declare the same.
    let queueType: QueueType

    var usersDatabase: String { "\(directory)/users.sqlite" }
    var ordersDatabase: String { "\(directory)/orders.sqlite" }

    private init(directory: String, brokerURL: String, environment: [String: String]) throws {
        self.directory = directory
        self.brokerURL = brokerURL
        userPort = try freePort()
        orderPort = try freePort()
        notificationPort = try freePort()
        let common = ["RABBITMQ_URL": brokerURL, "LOG_LEVEL": "info"].merging(environment) { $1 }
        queueType = common["AMQP_QUEUE_TYPE"].flatMap { QueueType(rawValue: $0.lowercased()) } ?? .classic
        user = ServiceProcess(
            "user-service", arguments: ["--port", "\(userPort)"],
            environment: common.merging(["USER_DB_URL": "sqlite:///\(directory)/users.sqlite"]) { $1 },
            logDirectory: directory)
        notification = ServiceProcess(
            "notification-service", arguments: ["--port", "\(notificationPort)"], environment: common,
            logDirectory: directory)
        order = ServiceProcess(
            "order-service", arguments: ["--port", "\(orderPort)"],
            environment: common.merging(["ORDER_DB_URL": "sqlite:///\(directory)/orders.sqlite"]) { $1 },
            logDirectory: directory)
    }

    /// Starts all three, logging at `logLevel`, and waits until each answers `/readyz` with 200.
    static func start(
        _ name: String, broker: TestBroker? = nil, logLevel: String = "info", environment: [String: String] = [:]
    ) async throws -> RunningSystem {
        let environment = environment.merging(["LOG_LEVEL": logLevel]) { current, _ in current }
        let broker = if let broker { broker } else { try await TestBroker.shared() }
        let url = try await broker.makeVirtualHost("e2e-\(name)")
        let system = try RunningSystem(
            directory: try temporaryDirectory("e2e-\(name)"), brokerURL: url, environment: environment)
        for process in [system.order, system.notification, system.user] { try process.start() }
        try await system.waitUntilReady()
        return system
    }

    func waitUntilReady(_ ports: [Int]? = nil, timeout: Duration = .seconds(30)) async throws {
        for port in ports ?? [userPort, notificationPort, orderPort] {
            try await eventually(timeout: timeout, "service on port \(port) ready\n\(logs())") {
                (try? await self.request("GET", port: port, path: "/readyz").status) == 200
            }
        }
    }

    func stopAll() async {
        for process in [user, notification, order] { _ = try? await process.stop() }
    }

    func logs() -> String {
        [user, notification, order].map { "--- \($0.name)\n\($0.logTail())" }.joined(separator: "\n")
    }

    // MARK: HTTP

    func request(
        _ method: String, port: Int? = nil, path: String, json: Any? = nil, headers: [String: String] = [:]
    ) async throws -> TestHTTPResponse {
        try await httpRequest(method, port: port ?? userPort, path: path, json: json, headers: headers)
    }

    func createUser(name: String, email: String, headers: [String: String] = [:]) async throws -> TestHTTPResponse {
        try await request("POST", path: "/users", json: ["name": name, "email": email], headers: headers)
    }

    // MARK: Databases

    struct Snapshot: Equatable {
        var name: String?
        var email: String?
        var version: Int64
        var deleted: Bool
    }

    private static let readOnly: SQLiteConnection.Options = {
        var options = SQLiteConnection.Options()
        options.readOnly = true
        return options
    }()

    /// Every snapshot in the order service's database, by user id.
    func snapshots() throws -> [String: Snapshot] {
        guard FileManager.default.fileExists(atPath: ordersDatabase) else { return [:] }
        let db = try SQLiteConnection(path: ordersDatabase, options: Self.readOnly)
        defer { db.close() }
        var result: [String: Snapshot] = [:]
        for row in try db.query("SELECT user_id, name, email, version, deleted FROM user_snapshots") {
            result[row.string("user_id") ?? ""] = Snapshot(
                name: row.string("name"), email: row.string("email"), version: row.int64("version") ?? 0,
                deleted: row.int("deleted") == 1)
        }
        return result
    }

    /// How many events the user service's outbox holds (sent or not).
    func outboxCount() throws -> Int {
        let db = try SQLiteConnection(path: usersDatabase, options: Self.readOnly)
        defer { db.close() }
        return try db.queryFirst("SELECT count(*) AS n FROM outbox")?.int("n") ?? -1
    }

    // MARK: Broker

    /// Publishes raw messages to a queue of this system's virtual host, with confirms, declaring the queues as the
    /// services do.
    func publish(_ messages: [OutboundMessage]) async throws {
        try await publishMessages(messages, brokerURL: brokerURL, queueType: queueType)
    }

    /// Takes up to `count` messages from a queue of this system's virtual host (acking them), waiting up to `timeout`.
    func take(_ count: Int, from queue: String, timeout: Duration = .seconds(20)) async throws -> [Delivery] {
        try await takeMessages(count, from: queue, brokerURL: brokerURL, queueType: queueType, timeout: timeout)
    }

    // MARK: After hostile input

    /// A normal user reaches the order service at once, and no service reconnected to the broker.
    func expectFlowAndNoReconnect() async throws {
        let created = try await createUser(name: "Next", email: "next@example.com")
        #expect(created.status == 201)
        try await eventually(timeout: .seconds(15), "the next user flows") {
            try snapshots().values.contains { $0.name == "Next" }
        }
        for port in [userPort, notificationPort, orderPort] {
            let text = try await request("GET", port: port, path: "/metrics")
            let metrics = try PrometheusText(String(decoding: text.body, as: UTF8.self))
            for value in metrics.values("amqp_reconnects_total") {
                #expect(value == 0, "a reconnect on port \(port)\n\(logs())")
            }
        }
    }
}
