import EventCodec
import Foundation
import SQLiteStorage
import Testing
import TestSupport

@testable import UserService

/// A `users.sqlite` written by the previous version (schema version 2, idempotency keys with stored response
/// bodies) opens, keeps its data and still replays its keys.
struct UserDatabaseMigrationTests {
    @Test func aFileOfThePreviousVersionOpensAndReplaysItsKeys() async throws {
        let directory = try temporaryDirectory("UserServiceTests")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = "\(directory)/users.sqlite"

        // The previous version's file: its two migrations, a user, its pending event and its key, whose response
        // is the 201 body that version sent; and a key whose body is not a user (never written, but possible).
        // That version stored the key in the transaction that created the user, with the same timestamp.
        let created = Timestamp.format(Date())
        let original = User(
            id: "0b5c0000-0000-4000-8000-000000000001", name: "Ivy", email: "ivy@example.com", version: 1,
            createdAt: created, updatedAt: created)
        let event = UserEvent(
            kind: .created, userID: original.id, name: original.name, email: original.email, eventID: "ev-1",
            version: 1, occurredAt: Timestamp.parse(original.createdAt))
        do {
            let db = try SQLiteConnection(path: path)
            try db.migrate(Array(SQLiteUserStore.migrations.prefix(2)))
            try db.run(
                """
                INSERT INTO users(id, name, email, email_key, version, created_at, updated_at)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """,
                original.id, "Ivy Changed", original.email, original.email, 2, original.createdAt, original.createdAt)
            try db.run(
                """
                INSERT INTO outbox(event_id, event_type, user_id, body, traceparent, created_at)
                VALUES (?, ?, ?, ?, ?, ?)
                """,
                event.eventID, "user_created", original.id, event.encodedBody(), "t", original.createdAt)
            let response = Array(
                """
                {"created_at":"\(original.createdAt)","email":"ivy@example.com","id":"\(original.id)",\
                "name":"Ivy","updated_at":"\(original.createdAt)","version":1}
                """.utf8)
            let insertKey = """
                INSERT INTO idempotency_keys(key, fingerprint, user_id, response, created_at) VALUES (?, ?, ?, ?, ?)
                """
            try db.run(insertKey, "ivy-key", "Ivy\u{0}ivy@example.com", original.id, response, created)
            try db.run(insertKey, "odd-key", "x", original.id, Array("not json".utf8), created)
        }

        let store = try SQLiteUserStore(path: path, logger: quietLogger)
        #expect(try scalar(path, "PRAGMA user_version") == SQLiteUserStore.migrations.count)
        let replay = try await store.create(
            name: "Ivy", email: "ivy@example.com", traceparent: "t",
            idempotency: IdempotencyKey(key: "ivy-key", name: "Ivy", email: "ivy@example.com"))
        #expect(replay == .replayed(original))
        #expect(try await store.user(id: original.id)?.name == "Ivy Changed")
        let pending = try await store.outbox.pending(limit: 10)
        #expect(pending.map(\.eventID) == ["ev-1"])
        #expect(try scalar(path, "SELECT count(*) FROM idempotency_keys WHERE key = 'odd-key'") == 0)
    }
}
