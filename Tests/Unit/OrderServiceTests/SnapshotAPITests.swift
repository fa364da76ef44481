import Foundation
import HTTPServer
import Logging
import ServiceKit
import ServiceRuntime
import SQLiteStorage
import Testing
import TestSupport

@testable import OrderService

/// The snapshot read API over real HTTP on a real SQLite file, without a broker.
struct SnapshotAPITests {
    /// Rows as large as the event limits allow, with text that JSON must escape six bytes a byte, and rows stored
    /// before those limits: no page of `limit=500` grows past the user API's bound, and `next` goes on where it ended.
    @Test func noPageGrowsPastTheBoundWhateverTheRowsHold() async throws {
        let directory = try temporaryDirectory("snapshot-api")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = "\(directory)/orders.sqlite"
        var logger = Logger(label: "SnapshotAPITests")
        logger.logLevel = .warning
        let store = try SQLiteSnapshotStore(path: path, logger: logger)
        let control = String(repeating: "\u{1}", count: 400)
        let writer = try SQLiteConnection(path: path)
        try writer.execute("BEGIN")
        for index in 0..<600 {
            // One row in a hundred from before the limits: a 60 kB name.
            let name = index % 100 == 7 ? String(repeating: "n", count: 60_000) : control
            try writer.run(
                """
                INSERT INTO user_snapshots(user_id, name, email, version, updated_at, event_id)
                VALUES (?, ?, ?, 1, '2026-12-08T00:00:00.000Z', ?)
                """, String(format: "u%04d", index), name, String(repeating: "\u{2}", count: 254), "e\(index)")
        }
        try writer.execute("COMMIT")

        var assembly = ServiceAssembly(http: HTTPServerConfiguration(host: "127.0.0.1", port: 0), logger: logger)
        SnapshotAPI(store: store).register(in: &assembly.routes)
        let service = assembly.build()
        let running = InProcessService(service.stages.inStartOrder)
        let port = try await service.listeningPort()
        try await withCleanup({ await running.stop() }) {
            var seen: [String] = []
            var after = ""
            while true {
                let page = try await httpRequest("GET", port: port, path: "/snapshots/users?limit=500&after=\(after)")
                #expect(page.status == 200)
                #expect(page.body.count <= SnapshotAPI.pageBytes + 100, "a page of \(page.body.count) bytes")
                let items = page.json["items"] as? [[String: Any]] ?? []
                #expect(!items.isEmpty)
                seen += items.compactMap { $0["user_id"] as? String }
                guard let next = page.json["next"] as? String else { break }
                after = next
            }
            #expect(seen == (0..<600).map { String(format: "u%04d", $0) }, "every snapshot once, in order")
        }
    }
}
