import BrokerTestSupport
import Foundation
import SQLiteStorage
import TestSupport
import Testing

/// A broker alarm (`connection.blocked`): the user service reports it, still exits within SHUTDOWN_GRACE_SECONDS on
/// SIGTERM with its events kept in the outbox, and publishes them once the alarm is over.
struct BrokerAlarmShutdownTests {
    @Test func sigtermUnderABrokerAlarmExitsInTimeAndLosesNoEvent() async throws {
        let broker = try await TestBroker.startPrivate()
        let grace = 4
        let system = try await RunningSystem.start(
            "alarm", broker: broker, environment: ["SHUTDOWN_GRACE_SECONDS": "\(grace)"])
        defer {
            Task {
                await system.stopAll()
                try? await broker.stop()
            }
        }
        _ = try await broker.ctl(["set_vm_memory_high_watermark", "0.0000001"])
        for index in 0..<5 {
            let created = try await system.createUser(name: "Blocked \(index)", email: "blocked\(index)@example.com")
            #expect(created.status == 201)
        }
        try await eventually(timeout: .seconds(20), "/readyz reports the block\n\(system.logs())") {
            let ready = try await system.request("GET", path: "/readyz")
            return ready.json["broker_blocked"] as? Int == 1
        }
        #expect(system.user.log().contains("connection.blocked"))

        let stopping = ContinuousClock.now
        let status = try await system.user.stop(timeout: .seconds(30))
        let took = ContinuousClock.now - stopping
        #expect(status == 0, "\(system.user.logTail())")
        #expect(took < .seconds(grace) + .milliseconds(500), "exited after \(took), grace \(grace) s")
        #expect(try pendingEvents(system) == 5, "the events stay pending in the outbox")

        _ = try await broker.ctl(["set_vm_memory_high_watermark", "0.4"])
        try system.user.start()
        try await system.waitUntilReady([system.userPort])
        try await eventually(timeout: .seconds(20), "the events flow after the alarm\n\(system.logs())") {
            try system.snapshots().count == 5
        }
        try await eventually("marked sent") { try pendingEvents(system) == 0 }
    }

    private func pendingEvents(_ system: RunningSystem) throws -> Int {
        var options = SQLiteConnection.Options()
        options.readOnly = true
        let db = try SQLiteConnection(path: system.usersDatabase, options: options)
        defer { db.close() }
        return try db.queryFirst("SELECT count(*) AS n FROM outbox WHERE sent_at IS NULL")?.int("n") ?? -1
    }
}
