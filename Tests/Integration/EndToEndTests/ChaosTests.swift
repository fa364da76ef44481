import BrokerTestSupport
import Common
import EventCodec
import Foundation
import SQLiteStorage
import Synchronization
import Testing
import TestSupport

/// The proof of the delivery contract: under a steady load of creates, updates and deletes, the broker is
/// restarted twice, each service is SIGKILLed and restarted, and the broker closes every connection. Once the
/// system is quiet, the order service must hold exactly the user service's final state.
@Suite(.serialized)
struct ChaosTests {
    /// What the clients saw.
    private final class Tally: Sendable {
        private struct Counts {
            var requests = 0
            var successes = 0
            var failures = 0
            var acknowledgedUsers: Set<String> = []
        }
        private let counts = Mutex(Counts())

        func record(status: Int?, user: String? = nil) {
            counts.withLock { counts in
                counts.requests += 1
                if let status, (200..<300).contains(status) {
                    counts.successes += 1
                    if let user { counts.acknowledgedUsers.insert(user) }
                } else {
                    counts.failures += 1
                }
            }
        }

        var summary: (requests: Int, successes: Int, failures: Int, users: Set<String>) {
            counts.withLock { ($0.requests, $0.successes, $0.failures, $0.acknowledgedUsers) }
        }
    }

    // About 2 minutes alone on 2 cores; the limit only guards against a hang, with room for a loaded machine.
    @Test(.timeLimit(.minutes(8)))
    func nothingIsLostOrRegressedUnderBrokerAndProcessFaults() async throws {
        let broker = try await TestBroker.startPrivate()
        // The outbox keeps every published event, so the test can read the whole history back.
        let system = try await RunningSystem.start(
            "chaos", broker: broker, environment: ["OUTBOX_KEEP_SENT": "1000000"])
        defer {
            Task {
                await system.stopAll()
                try? await broker.stop()
            }
        }
        let tally = Tally()
        let stopFlag = StopFlag()

        // Load: workers run user life cycles back to back until the faults are over.
        let load = Task {
            await withTaskGroup(of: Void.self) { group in
                for worker in 0..<6 {
                    group.addTask { await Self.lifeCycles(worker: worker, system: system, tally: tally, stop: stopFlag) }
                }
            }
        }

        var faults: [String] = []
        func settle() async throws {
            try await system.waitUntilReady(timeout: .seconds(90))
            // Let the load run against the recovered system for a moment before the next fault.
            try await Task.sleep(for: .seconds(2))
        }
        try await Task.sleep(for: .seconds(2))

        try await broker.stop()
        try await Task.sleep(for: .seconds(1))  // the outage itself
        try await broker.start()
        faults.append("broker restart")
        try await settle()

        // Duplicates the order service absorbed (events not newer than its snapshot); its counter restarts with it.
        var absorbed = 0
        func absorbedSoFar() async -> Int {
            guard let text = try? await system.request("GET", port: system.orderPort, path: "/metrics"),
                let metrics = try? PrometheusText(String(decoding: text.body, as: UTF8.self))
            else { return 0 }
            return Int(metrics.value("snapshots_applied_total", ["result": "ignored"]) ?? 0)
        }

        for process in [system.user, system.notification, system.order] {
            if process === system.order { absorbed += await absorbedSoFar() }
            try await process.stop(signal: SIGKILL)
            try process.start()
            faults.append("SIGKILL \(process.name)")
            try await settle()
        }

        try await broker.closeAllConnections()
        faults.append("broker closed all connections")
        try await settle()

        try await broker.stop()
        try await Task.sleep(for: .seconds(1))
        try await broker.start()
        faults.append("broker restart")
        try await settle()

        stopFlag.set()
        await load.value

        // Quiet: nothing waits in the outbox and both queues are empty (ready and unacked).
        try await eventually(timeout: .seconds(90), "system quiet\n\(system.logs())") {
            let ready = try await system.request("GET", path: "/readyz")
            guard ready.json["outbox_backlog"] as? Int == 0 else { return false }
            let dispatch = try await broker.messageCount(queue: QueueName.dispatch, virtualHostURL: system.brokerURL)
            let order = try await broker.messageCount(queue: QueueName.order, virtualHostURL: system.brokerURL)
            return dispatch == 0 && order == 0
        }

        // The truth is the user service's database: its live users and the deletes it committed.
        let users = try SQLiteConnection(path: system.usersDatabase)
        defer { users.close() }
        var live: [String: (name: String, email: String, version: Int64)] = [:]
        for row in try users.query("SELECT id, name, email, version FROM users") {
            live[row.string("id") ?? ""] = (row.string("name") ?? "", row.string("email") ?? "", row.int64("version") ?? 0)
        }
        var deleted: [String: Int64] = [:]
        var created: Set<String> = []
        for row in try users.query("SELECT user_id, event_type, body FROM outbox") {
            let id = row.string("user_id") ?? ""
            switch row.string("event_type") {
            case UserEvent.Kind.created.rawValue: created.insert(id)
            case UserEvent.Kind.deleted.rawValue:
                deleted[id] = try UserEvent.decode(body: row.blob("body") ?? []).version
            default: break
            }
        }
        let events = try users.queryFirst("SELECT count(*) AS n FROM outbox")?.int("n") ?? 0

        absorbed += await absorbedSoFar()
        let snapshots = try system.snapshots()
        let (requests, successes, failures, acknowledged) = tally.summary
        var mismatches: [String] = []
        for (id, user) in live {
            let snapshot = snapshots[id]
            if snapshot != .init(name: user.name, email: user.email, version: user.version, deleted: false) {
                mismatches.append("\(id): user service \(user), order service \(String(describing: snapshot))")
            }
        }
        for (id, version) in deleted where snapshots[id] != .init(name: nil, email: nil, version: version, deleted: true) {
            mismatches.append("\(id): deleted at version \(version), order service \(String(describing: snapshots[id]))")
        }
        #expect(mismatches.count == 0, "users differ, e.g. \(Array(mismatches.prefix(5)))")
        let strangers = Set(snapshots.keys).subtracting(created)
        #expect(strangers.count == 0, "snapshots of users never created, e.g. \(Array(strangers.prefix(5)))")
        let unknown = acknowledged.subtracting(created)
        #expect(unknown.count == 0, "users acknowledged with 2xx but unknown to the user service, e.g. \(Array(unknown.prefix(5)))")
        #expect(acknowledged.count > 50, "the load produced users: \(acknowledged.count)")

        for queue in [QueueName.deadLetter(for: QueueName.dispatch), QueueName.deadLetter(for: QueueName.order), QueueName.unrouted] {
            let count = try await broker.messageCount(queue: queue, virtualHostURL: system.brokerURL) ?? 0
            #expect(count == 0, "\(queue) holds \(count) messages")
        }
        print(
            """
            chaos: \(requests) requests, \(successes) 2xx, \(failures) failed during faults; \
            faults injected: \(faults.count) (\(faults.joined(separator: ", "))); \
            events committed: \(events); duplicates absorbed: \(absorbed) (at least: the counter of a killed \
            order service since its last scrape is lost); users: \(live.count) live, \(deleted.count) deleted; \
            snapshots: \(snapshots.count)
            """)
    }

    /// Create, rename, change email, and delete every other user, until told to stop. Failed requests (the
    /// user service being killed, say) are counted and the worker moves on to a new user.
    private static func lifeCycles(worker: Int, system: RunningSystem, tally: Tally, stop: StopFlag) async {
        var index = 0
        while !stop.isSet {
            index += 1
            let email = "w\(worker)-\(index)-\(UUID().uuidString.prefix(6))@example.com"
            let created = try? await system.createUser(name: "W\(worker) \(index)", email: email)
            let id = created?.json["id"] as? String
            tally.record(status: created?.status, user: id)
            guard let id, created?.status == 201 else {
                try? await Task.sleep(for: .milliseconds(100))  // pacing while the service restarts
                continue
            }
            let renamed = try? await system.request("PATCH", path: "/users/\(id)", json: ["name": "W\(worker) \(index) r"])
            tally.record(status: renamed?.status, user: id)
            let moved = try? await system.request("PATCH", path: "/users/\(id)", json: ["email": "m-" + email])
            tally.record(status: moved?.status, user: id)
            if index % 2 == 0 {
                let deleted = try? await system.request("DELETE", path: "/users/\(id)")
                tally.record(status: deleted?.status, user: id)
            }
        }
    }
}

/// A flag one task sets and others read.
final class StopFlag: Sendable {
    private let flag = Mutex(false)
    func set() { flag.withLock { $0 = true } }
    var isSet: Bool { flag.withLock { $0 } }
}
