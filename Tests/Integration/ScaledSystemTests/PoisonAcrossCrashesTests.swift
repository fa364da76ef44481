import BrokerTestSupport
import Common
import EventCodec
import DatabaseTestSupport
import Foundation
import Messaging
import Testing
import TestSupport

/// The poison bound across crashes, with two order-service processes on PostgreSQL, on classic and on quorum
/// queues: a message whose handling ends with the process killed, every time either instance takes it, is
/// dead-lettered after `MAX_DELIVERY_ATTEMPTS` takes; the instances take turns, each started fresh between the takes.
///
/// No input crashes the real order service (a bad message is dead-lettered, a database failure holds the delivery),
/// so the crash is made from outside: `user_snapshots` is locked (ACCESS EXCLUSIVE, in a psql session of the
/// test's), the instance that takes the message waits on the lock with the delivery unacked, and the test SIGKILLs
/// it. The count must travel with the message (`x-delivery-count` on quorum, `x-attempts` on classic queues): each
/// restarted process starts with no memory of earlier takes.
extension ScaledProcesses {
    @Suite(.timeLimit(.minutes(8)))
    struct PoisonAcrossCrashesTests {
        @Test(arguments: [QueueType.classic, .quorum])
        func aMessageThatKillsEveryConsumerIsDeadLetteredAfterTheBound(queueType: QueueType) async throws {
            let broker = try await TestBroker.shared()
            let postgres = try await TestPostgres.shared()
            let url = try await broker.makeVirtualHost("poison-crash-\(queueType)")
            let system = try await ScaledSystem(
                "poison-crash-\(queueType)", brokerURL: url, postgres: postgres, counts: (0, 0, 2),
                environment: ["AMQP_QUEUE_TYPE": "\(queueType)", "MAX_DELIVERY_ATTEMPTS": "3", "PREFETCH": "1"])
            try await withCleanup({ await system.stopAll() }) {
                // The instances take turns: one runs at a time, so each take is one process's and ends with its kill.
                var running = 0
                try system.orders[running].process.start()
                try await system.waitUntilReady([system.orders[running]])
                #expect(try await typeOf(QueueName.order, broker: broker, url: url) == "\(queueType)")

                let lock = try TableLock(databaseURL: system.ordersDatabaseURL, table: "user_snapshots", directory: system.directory)
                defer { lock.release() }
                try await eventually(timeout: .seconds(20), "the test holds the table lock") { try await lock.isHeld(postgres) }

                let event = UserEvent(
                    kind: .created, userID: "killer", name: "K", email: "k@example.com", eventID: "killer-1", version: 1,
                    occurredAt: Date())
                try await publishMessages(
                    [OutboundMessage(queue: QueueName.order, body: event.encodedBody(), properties: MessageProperties(messageID: event.eventID))],
                    brokerURL: url, queueType: queueType)

                let dead = QueueName.deadLetter(for: QueueName.order)
                // The broker's counts of a quorum queue lag by seconds, so the instance's own log says it first: a count
                // alone once let the test kill an instance that had just dead-lettered the message.
                @Sendable func deadLettered() async throws -> Bool {
                    if system.logs(lines: 10_000).contains("message moved to dead-letter queue") { return true }
                    return try await broker.messageCount(queue: dead, virtualHostURL: url) ?? 0 > 0
                }
                var kills = 0
                while try await !deadLettered() {
                    try #require(kills < 8, "still not dead-lettered after \(kills) kills\n\(system.logs())")
                    let counts = try await queueCounts(QueueName.order, broker: broker, virtualHostURL: url)
                    try await eventually(timeout: .seconds(30), "an instance holds the message (\(String(describing: counts)))\n\(system.logs())") {
                        let held = try await queueCounts(QueueName.order, broker: broker, virtualHostURL: url)?.unacked == 1
                        if try await deadLettered() { return true }
                        return held
                    }
                    if try await deadLettered() { break }
                    let holder = system.orders[running]
                    try await holder.process.stop(signal: SIGKILL)
                    kills += 1
                    running = 1 - running
                    let next = system.orders[running]
                    try next.process.start()
                    try await eventually(timeout: .seconds(60), "\(next.name) up\n\(system.logs())") {
                        (try? await httpRequest("GET", port: next.port, path: "/healthz").status) == 200
                    }
                }
                // Three takes, each by a fresh process of one instance or the other, each ended by a kill; the fourth
                // arrival is dead-lettered. Fewer kills would mean takes counted that did not happen; more, takes that
                // were not counted (a count kept in a process would never reach the bound at all).
                #expect(kills == 3, "dead-lettered after \(kills) kills\n\(system.logs())")
                let letter = try #require(try await takeOne(from: dead, brokerURL: url, queueType: queueType))
                #expect(letter.properties.headers["x-attempts"] == "3", "\(letter.properties.headers)")
                #expect(letter.properties.headers["x-error"]?.contains("taken 3 times without being settled") == true, "\(letter.properties.headers)")
                #expect(try UserEvent.decode(body: letter.body).eventID == "killer-1")
                try await eventually(timeout: .seconds(20), "queue_order is empty") {
                    try await queueCounts(QueueName.order, broker: broker, virtualHostURL: url).map { $0.ready + $0.unacked } == 0
                }
            }
        }

        private func typeOf(_ queue: String, broker: TestBroker, url: String) async throws -> String? {
            let vhost = String(url.split(separator: "/").last ?? "")
            let output = try await broker.ctl(["list_queues", "-p", vhost, "-q", "--no-table-headers", "name", "type"])
            for line in output.split(separator: "\n") {
                let fields = line.split(whereSeparator: { $0 == "\t" || $0 == " " })
                if fields.count == 2, fields[0] == queue { return String(fields[1]) }
            }
            return nil
        }
    }
}

/// A table locked ACCESS EXCLUSIVE by a psql session of its own (a transaction that sleeps), until ``release()``
/// ends that session from another one (a sleeping backend does not notice its client going away).
final class TableLock: Sendable {
    private let databaseURL: String
    private let tag: String
    private let pid: pid_t

    init(databaseURL: String, table: String, directory: String) throws {
        self.databaseURL = databaseURL
        tag = "table_lock_\(UUID().uuidString.prefix(8).lowercased())"
        pid = try spawn(
            ["/usr/bin/psql", databaseURL, "-v", "ON_ERROR_STOP=1", "-c",
             "BEGIN; LOCK TABLE \(table) IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(600) AS \(tag);"],
            output: "\(directory)/table-lock.log")
    }

    /// Whether the session holds the lock (is sleeping inside its transaction).
    func isHeld(_ postgres: TestPostgres) async throws -> Bool {
        let count = try await postgres.psql(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%AS \(tag)%' AND wait_event = 'PgSleep'",
            database: TestPostgres.databaseName(databaseURL))
        return count == "1"
    }

    /// Ends the session (and so the lock) and reaps the psql process.
    func release() {
        _ = try? runProcessBlocking(
            ["/usr/bin/psql", databaseURL, "-At", "-c",
             "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%AS \(tag)%' AND pid <> pg_backend_pid()"])
        kill(pid, SIGKILL)
        var status: Int32 = 0
        _ = waitpid(pid, &status, 0)
    }
}
