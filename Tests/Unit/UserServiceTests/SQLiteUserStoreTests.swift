import EventCodec
import Foundation
import SQLiteStorage
import Testing

@testable import UserService

/// The user store on real SQLite files, without a broker: what a 201, 200 or 204 has committed.
struct SQLiteUserStoreTests {
    @Test func createCommitsTheUserAndItsEvent() async throws {
        try await withUserStore { store, _ in
            let outcome = try await store.create(
                name: "Alice", email: "alice@example.com", traceparent: "00-trace-01", idempotency: nil)
            guard case .created(let user) = outcome else {
                Issue.record("expected a new user, got \(outcome)")
                return
            }
            #expect(user.version == 1)
            #expect(user.createdAt == user.updatedAt)
            #expect(try await store.user(id: user.id) == user)

            let pending = try await store.outbox.pending(limit: 10)
            #expect(pending.count == 1)
            let entry = try #require(pending.first)
            #expect(entry.eventType == "user_created")
            #expect(entry.userID == user.id)
            #expect(entry.traceparent == "00-trace-01")
            let event = try UserEvent.decode(body: entry.body)
            #expect(event.kind == .created && event.userID == user.id && event.version == 1)
            #expect(event.name == "Alice" && event.email == "alice@example.com")
            #expect(event.eventID == entry.eventID)
        }
    }

    @Test func emailsAreUniqueRegardlessOfCaseAndARefusalWritesNoEvent() async throws {
        try await withUserStore { store, _ in
            _ = try await store.create(name: "Alice", email: "alice@example.com", traceparent: "t", idempotency: nil)
            let second = try await store.create(
                name: "Bob", email: "bob@example.com", traceparent: "t", idempotency: nil)
            guard case .created(let bob) = second else { throw UserStoreError.notFound }

            let taken = await refusal {
                try await store.create(name: "A", email: "ALICE@example.com", traceparent: "t", idempotency: nil)
            }
            #expect(taken == .emailTaken)
            let takenByUpdate = await refusal {
                try await store.update(
                    id: bob.id, patch: UserPatch(email: "Alice@Example.com"), condition: .any, traceparent: "t")
            }
            #expect(takenByUpdate == .emailTaken)
            #expect(try await store.user(id: bob.id) == bob)
            #expect(try await store.outbox.backlog() == 2)
        }
    }

    @Test func anIdempotencyKeyReplaysTheUserItCreated() async throws {
        try await withUserStore { store, _ in
            let key = IdempotencyKey(key: "k1", name: "Carol", email: "carol@example.com")
            let first = try await store.create(
                name: "Carol", email: "carol@example.com", traceparent: "t", idempotency: key)
            guard case .created(let carol) = first else { throw UserStoreError.notFound }

            let retry = try await store.create(
                name: "Carol", email: "carol@example.com", traceparent: "t", idempotency: key)
            #expect(retry == .replayed(carol))

            // The replay is the user as first created, even after it changed.
            _ = try await store.update(
                id: carol.id, patch: UserPatch(name: "Caroline"), condition: .any, traceparent: "t")
            let late = try await store.create(
                name: "Carol", email: "carol@example.com", traceparent: "t", idempotency: key)
            #expect(late == .replayed(carol))

            let reused = await refusal {
                try await store.create(
                    name: "Carol", email: "carol2@example.com", traceparent: "t",
                    idempotency: IdempotencyKey(key: "k1", name: "Carol", email: "carol2@example.com"))
            }
            #expect(reused == .idempotencyKeyReused)
            #expect(try await store.users(after: 0, limit: 10).users.count == 1)
            #expect(try await store.outbox.backlog() == 2)  // created, updated: no event for a replay
        }
    }

    @Test func anExpiredIdempotencyKeyIsForgotten() async throws {
        try await withUserStore { store, path in
            let key = IdempotencyKey(key: "old", name: "Dave", email: "dave@example.com")
            _ = try await store.create(name: "Dave", email: "dave@example.com", traceparent: "t", idempotency: key)
            let expired = Timestamp.format(Date().addingTimeInterval(-UserStoreRules.idempotencyKeyLifetime - 60))
            try SQLiteConnection(path: path).run("UPDATE idempotency_keys SET created_at = ?", expired)

            // Not replayed any more: the retry is a new create, and the email is taken by the first one.
            let retry = await refusal {
                try await store.create(name: "Dave", email: "dave@example.com", traceparent: "t", idempotency: key)
            }
            #expect(retry == .emailTaken)
            // The next create with a key removes it for good.
            _ = try await store.create(
                name: "Eve", email: "eve@example.com", traceparent: "t",
                idempotency: IdempotencyKey(key: "new", name: "Eve", email: "eve@example.com"))
            #expect(try scalar(path, "SELECT count(*) FROM idempotency_keys WHERE key = 'old'") == 0)
        }
    }

    @Test func updatesAndDeletesFollowVersionConditions() async throws {
        try await withUserStore { store, _ in
            let created = try await store.create(
                name: "Erin", email: "erin@example.com", traceparent: "t", idempotency: nil)
            guard case .created(let erin) = created else { throw UserStoreError.notFound }

            let renamed = try await store.update(
                id: erin.id, patch: UserPatch(name: "Erin E."), condition: .oneOf([1]), traceparent: "t")
            #expect(renamed.version == 2 && renamed.name == "Erin E." && renamed.email == "erin@example.com")
            #expect(renamed.createdAt == erin.createdAt)

            let stale = await refusal {
                try await store.update(
                    id: erin.id, patch: UserPatch(name: "X"), condition: .oneOf([1]), traceparent: "t")
            }
            #expect(stale == .versionMismatch(current: 2))
            // A patch that changes nothing: no new version, no event.
            let same = try await store.update(
                id: erin.id, patch: UserPatch(name: "Erin E."), condition: .any, traceparent: "t")
            #expect(same == renamed)
            let missing = await refusal {
                try await store.update(id: "nobody", patch: UserPatch(name: "X"), condition: .any, traceparent: "t")
            }
            #expect(missing == .notFound)

            let wrongVersion = await refusal {
                try await store.delete(id: erin.id, condition: .oneOf([1, 3]), traceparent: "t")
            }
            #expect(wrongVersion == .versionMismatch(current: 2))
            try await store.delete(id: erin.id, condition: .oneOf([2]), traceparent: "t")
            #expect(try await store.user(id: erin.id) == nil)
            let again = await refusal { try await store.delete(id: erin.id, condition: .any, traceparent: "t") }
            #expect(again == .notFound)

            // One event per committed change, in order, each with the version it produced.
            let events = try await store.outbox.pending(limit: 10).map { try UserEvent.decode(body: $0.body) }
            #expect(events.map(\.kind) == [.created, .updated, .deleted])
            #expect(events.map(\.version) == [1, 2, 3])
            #expect(events[1].name == "Erin E." && events[1].email == "erin@example.com")
        }
    }

    @Test func usersArePagedInCreationOrder() async throws {
        try await withUserStore { store, _ in
            var ids: [String] = []
            for index in 0..<5 {
                let outcome = try await store.create(
                    name: "User \(index)", email: "u\(index)@example.com", traceparent: "t", idempotency: nil)
                if case .created(let user) = outcome { ids.append(user.id) }
            }
            var seen: [String] = []
            var position: Int64 = 0
            var pages = 0
            while pages < 10 {
                let page = try await store.users(after: position, limit: 2)
                seen += page.users.map(\.id)
                pages += 1
                guard let next = page.next else { break }
                position = next
            }
            #expect(seen == ids)
            #expect(pages == 3)
            let exact = try await store.users(after: 0, limit: 5)
            #expect(exact.users.count == 5 && exact.next == nil)
        }
    }

    @Test func aChangeWhoseEventCannotBeWrittenIsNotCommitted() async throws {
        try await withUserStore { store, path in
            // The fault: the database refuses outbox rows for one user, or any new idempotency key.
            try SQLiteConnection(path: path).execute(
                """
                CREATE TRIGGER no_event BEFORE INSERT ON outbox WHEN NEW.event_type = 'user_updated'
                BEGIN SELECT RAISE(ABORT, 'no event'); END;
                CREATE TRIGGER no_key BEFORE INSERT ON idempotency_keys BEGIN SELECT RAISE(ABORT, 'no key'); END;
                """)
            let created = try await store.create(
                name: "Fay", email: "fay@example.com", traceparent: "t", idempotency: nil)
            guard case .created(let fay) = created else { throw UserStoreError.notFound }

            let update = await refusal {
                try await store.update(id: fay.id, patch: UserPatch(name: "Faye"), condition: .any, traceparent: "t")
            }
            guard case .unavailable(let reason) = update else {
                Issue.record("expected the database's refusal, got \(String(describing: update))")
                return
            }
            #expect(reason.contains("no event"))
            #expect(try await store.user(id: fay.id) == fay, "the user row was rolled back with its event")

            // The key is the last write of a create: the user and its event written before it are undone too.
            let keyed = await refusal {
                try await store.create(
                    name: "Gus", email: "gus@example.com", traceparent: "t",
                    idempotency: IdempotencyKey(key: "k", name: "Gus", email: "gus@example.com"))
            }
            #expect(keyed.map { "\($0)" }?.contains("no key") == true)
            #expect(try await store.users(after: 0, limit: 10).users == [fay])
            #expect(try scalar(path, "SELECT count(*) FROM outbox") == 1)
        }
    }

    @Test func rulesMakeVersionsAndEvents() {
        let now = Date()
        let (user, created) = UserStoreRules.created(name: "Hal", email: "Hal@Example.com", at: now)
        #expect(user.version == 1 && created.version == 1 && created.kind == .created)
        #expect(created.userID == user.id && created.occurredAt == now)
        #expect(UserStoreRules.emailKey(user.email) == "hal@example.com")
        #expect(UserStoreRules.updated(user, by: UserPatch(name: "Hal"), at: now) == nil)
        let changed = try? #require(UserStoreRules.updated(user, by: UserPatch(email: "hal@example.org"), at: now))
        #expect(changed?.user.version == 2 && changed?.user.name == "Hal" && changed?.user.email == "hal@example.org")
        #expect(changed?.event.kind == .updated && changed?.event.version == 2 && changed?.event.name == "Hal")
        #expect(changed?.event.eventID != created.eventID)
        let deleted = UserStoreRules.deleted(changed?.user ?? user, at: now)
        #expect(deleted.kind == .deleted && deleted.version == 3 && deleted.name == nil)
    }
}
