import BrokerTestSupport
import Foundation
import SQLiteStorage
import Testing
import TestSupport

/// A user database that cannot be written (its disk is full) answers 503 with a clear error, leaves nothing
/// half-written, and recovers by itself once there is room again.
@Suite(.serialized)
struct DatabaseFaultTests {
    @Test func fullDiskGives503AndRecovers() async throws {
        let broker = try await TestBroker.shared()
        let url = try await broker.makeVirtualHost("db-fault")
        let directory = try temporaryDirectory("db-fault")
        let disk = try await mountSmallDisk(in: directory)
        defer { unmountSmallDisk(disk) }

        let port = try freePort()
        let service = ServiceProcess(
            "user-service", arguments: ["--port", "\(port)"],
            environment: ["RABBITMQ_URL": url, "USER_DB_URL": "\(disk)/users.sqlite"], logDirectory: directory)
        try service.start()
        try await withCleanup({ try? await service.stop() }) {
            try await eventually("user service answers") {
                (try? await httpRequest("GET", port: port, path: "/healthz").status) == 200
            }
            let before = try await httpRequest(
                "POST", port: port, path: "/users", json: ["name": "Before", "email": "before@example.com"])
            #expect(before.status == 201)

            // Fill the disk.
            let filler = try fillDisk(disk)

            var refused: TestHTTPResponse?
            for index in 0..<200 {
                // Enough rows to need new pages whatever SQLite had preallocated.
                let response = try await httpRequest(
                    "POST", port: port, path: "/users",
                    json: ["name": String(repeating: "x", count: 100), "email": "full\(index)@example.com"])
                if response.status != 201 {
                    refused = response
                    break
                }
            }
            let failure = try #require(refused, "a write to a full disk must fail")
            #expect(failure.status == 503)
            #expect(failure.json["error"] as? String == "database_unavailable")
            #expect((failure.json["detail"] as? String)?.isEmpty == false)
            let health = try await httpRequest("GET", port: port, path: "/healthz")
            #expect(health.status == 200)

            // Room again: the service recovers without a restart.
            try FileManager.default.removeItem(atPath: filler)
            let after = try await httpRequest(
                "POST", port: port, path: "/users", json: ["name": "After", "email": "after@example.com"])
            #expect(after.status == 201)

            // Nothing half-written: every user has its event, and the refused one has neither.
            try await service.stop()
            let db = try SQLiteConnection(path: "\(disk)/users.sqlite")
            defer { db.close() }
            let users = try db.queryFirst("SELECT count(*) AS n FROM users")?.int("n") ?? -1
            let events = try db.queryFirst("SELECT count(*) AS n FROM outbox")?.int("n") ?? -2
            #expect(users == events)
            #expect(users >= 2)
        }
    }
}
