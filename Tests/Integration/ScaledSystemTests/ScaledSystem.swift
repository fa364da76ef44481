import BrokerTestSupport
import DatabaseTestSupport
import Foundation
import Logging
import Messaging
import Testing
import TestSupport

/// The suites of this target, one test at a time: each runs several service processes (up to six, beside a
/// private cluster), and run together with the rest of `make test` on a 2-core machine they starved one another
/// past their time limits.
@Suite(.serialized) enum ScaledProcesses {}

/// Several instances of each real executable, started as processes (the swift build products), on PostgreSQL
/// databases of the test's own and a broker URL (one node's, or a cluster's comma-separated list). Each instance
/// logs to its own file under the test's directory.
final class ScaledSystem: Sendable {
    /// One running (or stopped) instance and its admin or API port.
    struct Instance: Sendable {
        let process: ServiceProcess
        let port: Int
        var name: String { "\(process.name)-\(port)" }
    }

    let directory: String
    let brokerURL: String
    let usersDatabaseURL: String
    let ordersDatabaseURL: String
    let users: [Instance]
    let notifications: [Instance]
    let orders: [Instance]
    var all: [Instance] { users + notifications + orders }

    /// Prepares (does not start) `counts` instances. `environment` goes to every instance, `notificationEnvironment`
    /// to the notification-service instances; `routingTables`, when given, holds one routing-table file per
    /// notification-service instance.
    init(
        _ name: String, brokerURL: String, postgres: TestPostgres, counts: (user: Int, notification: Int, order: Int),
        environment: [String: String] = [:], notificationEnvironment: [String: String] = [:],
        routingTables: [String]? = nil
    ) async throws {
        let directory = try temporaryDirectory("scaled-\(name)")
        let usersDatabaseURL = try await postgres.freshDatabase("users")
        let ordersDatabaseURL = try await postgres.freshDatabase("orders")
        self.directory = directory
        self.brokerURL = brokerURL
        self.usersDatabaseURL = usersDatabaseURL
        self.ordersDatabaseURL = ordersDatabaseURL
        let common = ["RABBITMQ_URL": brokerURL, "LOG_LEVEL": "info"].merging(environment) { $1 }
        func make(_ executable: String, _ index: Int, _ extra: [String: String]) throws -> Instance {
            let logs = "\(directory)/\(executable)-\(index)"
            try FileManager.default.createDirectory(atPath: logs, withIntermediateDirectories: true)
            let port = try freePort()
            return Instance(
                process: ServiceProcess(
                    executable, arguments: ["--port", "\(port)"], environment: common.merging(extra) { $1 },
                    logDirectory: logs),
                port: port)
        }
        users = try (0..<counts.user).map { try make("user-service", $0 + 1, ["USER_DB_URL": usersDatabaseURL]) }
        notifications = try (0..<counts.notification).map { index in
            let table = routingTables.map { ["ROUTING_TABLE": $0[index]] } ?? [:]
            return try make("notification-service", index + 1, notificationEnvironment.merging(table) { $1 })
        }
        orders = try (0..<counts.order).map { try make("order-service", $0 + 1, ["ORDER_DB_URL": ordersDatabaseURL]) }
    }

    /// Starts every instance (consumers first) and waits until each answers `/readyz` with 200.
    func start(timeout: Duration = .seconds(90)) async throws {
        for instance in orders + notifications + users { try instance.process.start() }
        try await waitUntilReady(timeout: timeout)
    }

    /// Waits until every instance (or those given) answers `/readyz` with 200.
    func waitUntilReady(_ instances: [Instance]? = nil, timeout: Duration = .seconds(90)) async throws {
        for instance in instances ?? all {
            try await eventually(timeout: timeout, "\(instance.name) ready\n\(logs())") {
                (try? await httpRequest("GET", port: instance.port, path: "/readyz").status) == 200
            }
        }
    }

    func stopAll() async {
        for instance in users + notifications + orders { _ = try? await instance.process.stop() }
    }

    func logs(lines: Int = 25) -> String {
        all.map { "--- \($0.name)\n\($0.process.logTail(lines: lines))" }.joined(separator: "\n")
    }

    /// `/readyz` of a user-service instance, or nil when it does not answer.
    func readiness(_ instance: Instance) async -> [String: Any]? {
        guard let response = try? await httpRequest("GET", port: instance.port, path: "/readyz") else { return nil }
        return response.json
    }

    /// The user-service instances whose `/readyz` says they hold the relay.
    func relayHolders() async -> [Int] {
        var holders: [Int] = []
        for (index, instance) in users.enumerated() where instance.process.isRunning {
            if await readiness(instance)?["outbox_relay"] as? Int == 1 { holders.append(index) }
        }
        return holders
    }
}

// MARK: The databases, read through psql

/// A user's state as the user service committed it, or as the order service holds it.
struct UserState: Equatable, CustomStringConvertible {
    var name: String?
    var email: String?
    var version: Int64
    var deleted: Bool
    var description: String { deleted ? "deleted@\(version)" : "\(name ?? "-")/\(email ?? "-")@\(version)" }
}

/// One row of the user service's outbox.
struct OutboxRow {
    var userID: String
    var eventID: String
    var eventType: String
    var version: Int64
    var sent: Bool
}

extension TestPostgres {
    /// The database name at the end of a `postgres://.../NAME` URL.
    static func databaseName(_ url: String) -> String { String(url.split(separator: "/").last ?? "") }

    /// The truth of the users database: live users, and the users deleted (at the version of their delete event).
    func userStates(_ databaseURL: String) async throws -> [String: UserState] {
        let database = Self.databaseName(databaseURL)
        var states: [String: UserState] = [:]
        for fields in try await rows("SELECT id, name, email, version FROM users", database: database) {
            states[fields[0]] = UserState(name: fields[1], email: fields[2], version: Int64(fields[3]) ?? -1, deleted: false)
        }
        for row in try await outbox(databaseURL) where row.eventType == "user_deleted" {
            states[row.userID] = UserState(name: nil, email: nil, version: row.version, deleted: true)
        }
        return states
    }

    /// Every outbox row, oldest position first (the relay keeps sent rows as `OUTBOX_KEEP_SENT` allows).
    func outbox(_ databaseURL: String) async throws -> [OutboxRow] {
        let sql = """
            SELECT user_id, event_id, event_type, convert_from(body, 'UTF8')::json->>'version', sent_at IS NOT NULL
            FROM outbox ORDER BY seq
            """
        return try await rows(sql, database: Self.databaseName(databaseURL)).map {
            OutboxRow(userID: $0[0], eventID: $0[1], eventType: $0[2], version: Int64($0[3]) ?? -1, sent: $0[4] == "t")
        }
    }

    /// The order service's snapshots, by user id.
    func snapshots(_ databaseURL: String) async throws -> [String: UserState] {
        var states: [String: UserState] = [:]
        let sql = "SELECT user_id, name, email, version, deleted FROM user_snapshots"
        for fields in try await rows(sql, database: Self.databaseName(databaseURL)) {
            states[fields[0]] = UserState(
                name: fields[1].isEmpty ? nil : fields[1], email: fields[2].isEmpty ? nil : fields[2],
                version: Int64(fields[3]) ?? -1, deleted: fields[4] == "t")
        }
        return states
    }

    /// Rows of `sql`'s result, fields split on `|` (the test's own values never contain one).
    private func rows(_ sql: String, database: String) async throws -> [[String]] {
        try await psql(sql, database: database).split(separator: "\n").map {
            $0.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
        }
    }
}

/// Differences between the users database's final state and the order service's snapshots (empty when equal).
func differences(truth: [String: UserState], snapshots: [String: UserState]) -> [String] {
    var found: [String] = []
    for (id, state) in truth.sorted(by: { $0.key < $1.key }) where snapshots[id] != state {
        found.append("\(id): users \(state), orders \(snapshots[id].map(\.description) ?? "missing")")
    }
    for id in Set(snapshots.keys).subtracting(truth.keys) { found.append("\(id): a snapshot of a user never created") }
    return found
}

// MARK: The broker

/// A message count of `queue` in the virtual host of `virtualHostURL` on the single test broker:
/// `messages_ready` and `messages_unacknowledged`, or nil if there is no such queue.
func queueCounts(_ queue: String, broker: TestBroker, virtualHostURL: String) async throws -> (ready: Int, unacked: Int)? {
    let vhost = String(virtualHostURL.split(separator: "/").last ?? "")
    let output = try await broker.ctl(
        ["list_queues", "-p", vhost, "-q", "--no-table-headers", "name", "messages_ready", "messages_unacknowledged"])
    for line in output.split(separator: "\n") {
        let fields = line.split(whereSeparator: { $0 == "\t" || $0 == " " })
        if fields.count == 3, fields[0] == queue { return (Int(fields[1]) ?? -1, Int(fields[2]) ?? -1) }
    }
    return nil
}

/// Prometheus text of an instance's `/metrics`, or nil.
func metrics(port: Int) async -> PrometheusText? {
    guard let response = try? await httpRequest("GET", port: port, path: "/metrics") else { return nil }
    return try? PrometheusText(String(decoding: response.body, as: UTF8.self))
}

/// Takes one message from `queue` (acking it), declared as `queueType` (a quorum queue refuses a classic
/// declaration), waiting at most `timeout`; nil if none came.
func takeOne(from queue: String, brokerURL: String, queueType: QueueType, timeout: Duration = .seconds(20)) async throws -> Delivery? {
    var configuration = try BrokerConfiguration(url: brokerURL)
    configuration.queueType = queueType
    let consumer = Consumer(configuration: configuration, queue: queue, prefetch: 1, logger: Logger(label: "take"))
    return try await withThrowingTaskGroup(of: Delivery?.self) { group in
        group.addTask {
            try await consumer.run()
            return nil
        }
        group.addTask {
            for await delivery in consumer.deliveries {
                consumer.ack(delivery)
                return delivery
            }
            return nil
        }
        group.addTask {
            try await Task.sleep(for: timeout)
            return nil
        }
        let first = try await group.next() ?? nil
        // Cancelling stops the consumer, which sends the ack it was handed before it closes.
        group.cancelAll()
        return first
    }
}
