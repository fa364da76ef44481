import EventCodec
import Foundation
import Logging
import NIOHTTP1
import Testing

@testable import HTTPServer
@testable import UserService

/// What every `UserStore` backend (with its `Outbox`) must do, written once and run against SQLite
/// (Tests/Unit/StoreConformanceSQLiteTests) and PostgreSQL (Tests/Integration/StoreConformancePostgresTests).
public enum UserStoreConformance {
    /// The cases; a test target runs each against a backend with `run(_:on:)`.
    public enum Case: String, Sendable, CaseIterable, CustomStringConvertible {
        case createCommitsTheUserAndItsEventTogether
        case emailsAreUniqueRegardlessOfCase
        case updatesCountVersionsAndSkipNoOps
        case ifMatchRefusesOtherVersions
        case deleteAppendsTheNextVersion
        case idempotencyKeysReplayAndRefuseReuse
        case concurrentUpdatesGetConsecutiveVersionsInOrder
        case outboxMarksExactlyTheGivenRows
        case outboxPruningKeepsUnsentRows
        case usersPageInCreationOrder
        case theAPIReplaysAnIdempotentCreateAndRefusesItsKeyForAnotherBody
        case theAPIRefusesTextTheDatabaseCannotHold

        public var description: String { rawValue }
    }

    /// Runs `case` against a fresh database of `backend`.
    public static func run(_ case: Case, on backend: StoreBackend) async throws {
        switch `case` {
        case .outboxPruningKeepsUnsentRows:
            try await withUserStore(backend, keptSentRows: 2) { store, outbox in
                try await outboxPruningKeepsUnsentRows(store, outbox)
            }
        default:
            try await withUserStore(backend) { store, outbox in
                switch `case` {
                case .createCommitsTheUserAndItsEventTogether: try await createCommits(store, outbox)
                case .emailsAreUniqueRegardlessOfCase: try await emailsAreUnique(store, outbox)
                case .updatesCountVersionsAndSkipNoOps: try await updatesCountVersions(store, outbox)
                case .ifMatchRefusesOtherVersions: try await ifMatchRefuses(store, outbox)
                case .deleteAppendsTheNextVersion: try await deleteAppendsNextVersion(store, outbox)
                case .idempotencyKeysReplayAndRefuseReuse: try await idempotencyKeys(store, outbox)
                case .concurrentUpdatesGetConsecutiveVersionsInOrder: try await concurrentUpdates(store, outbox)
                case .outboxMarksExactlyTheGivenRows: try await outboxMarksExactlyTheGivenRows(store, outbox)
                case .usersPageInCreationOrder: try await usersPage(store, outbox)
                case .theAPIReplaysAnIdempotentCreateAndRefusesItsKeyForAnotherBody: try await apiIdempotency(store)
                case .theAPIRefusesTextTheDatabaseCannotHold: try await apiRefusesText(store)
                case .outboxPruningKeepsUnsentRows: break
                }
            }
        }
    }

    static func createCommits(_ store: any UserStore, _ outbox: any Outbox) async throws {
        let outcome = try await store.create(name: "Ann", email: "ann@example.com", traceparent: "t", idempotency: nil)
        guard case .created(let user) = outcome else { throw ConformanceFailure("expected a new user, got \(outcome)") }
        #expect(user.version == 1 && user.name == "Ann" && user.email == "ann@example.com")
        #expect(try await store.user(id: user.id) == user)
        let events = try await pendingEvents(outbox)
        #expect(events.count == 1)
        #expect(events.first?.kind == .created && events.first?.userID == user.id && events.first?.version == 1)
        #expect(try await outbox.backlog() == 1)
    }

    static func emailsAreUnique(_ store: any UserStore, _ outbox: any Outbox) async throws {
        _ = try await store.create(name: "Ann", email: "ann@example.com", traceparent: "t", idempotency: nil)
        let refused1 = await refusal { try await store.create(name: "A", email: "ANN@example.com", traceparent: "t", idempotency: nil) }
        #expect(refused1 == .emailTaken)
        let ben = try await createdUser(store, "Ben", "ben@example.com")
        let refused2 = await refusal {
                try await store.update(
                    id: ben.id, patch: UserPatch(email: "Ann@Example.com"), condition: .any, traceparent: "t")
            }
        #expect(refused2 == .emailTaken)
        // Refusals write nothing: two creates, two events.
        #expect(try await pendingEvents(outbox).count == 2)
        #expect(try await store.user(id: ben.id)?.email == "ben@example.com")
    }

    static func updatesCountVersions(_ store: any UserStore, _ outbox: any Outbox) async throws {
        let ann = try await createdUser(store, "Ann", "ann@example.com")
        let renamed = try await store.update(id: ann.id, patch: UserPatch(name: "Anna"), condition: .any, traceparent: "t")
        #expect(renamed.version == 2 && renamed.name == "Anna")
        let same = try await store.update(id: ann.id, patch: UserPatch(name: "Anna"), condition: .any, traceparent: "t")
        #expect(same == renamed)
        let events = try await pendingEvents(outbox)
        #expect(events.map(\.version) == [1, 2])
        #expect(events.last?.kind == .updated && events.last?.name == "Anna" && events.last?.email == "ann@example.com")
        let refused3 = await refusal { try await store.update(id: "nobody", patch: UserPatch(name: "X"), condition: .any, traceparent: "t") }
        #expect(refused3 == .notFound)
    }

    static func ifMatchRefuses(_ store: any UserStore, _ outbox: any Outbox) async throws {
        let ann = try await createdUser(store, "Ann", "ann@example.com")
        _ = try await store.update(id: ann.id, patch: UserPatch(name: "Anna"), condition: .oneOf([1]), traceparent: "t")
        let refused4 = await refusal {
                try await store.update(id: ann.id, patch: UserPatch(name: "Anne"), condition: .oneOf([1]), traceparent: "t")
            }
        #expect(refused4 == .versionMismatch(current: 2))
        let refused5 = await refusal { try await store.delete(id: ann.id, condition: .oneOf([1]), traceparent: "t") }
        #expect(refused5 == .versionMismatch(current: 2))
        #expect(try await store.user(id: ann.id)?.name == "Anna")
        #expect(try await pendingEvents(outbox).count == 2)
    }

    static func deleteAppendsNextVersion(_ store: any UserStore, _ outbox: any Outbox) async throws {
        let ann = try await createdUser(store, "Ann", "ann@example.com")
        _ = try await store.update(id: ann.id, patch: UserPatch(name: "Anna"), condition: .any, traceparent: "t")
        try await store.delete(id: ann.id, condition: .oneOf([2]), traceparent: "t")
        #expect(try await store.user(id: ann.id) == nil)
        let events = try await pendingEvents(outbox)
        #expect(events.map(\.kind) == [.created, .updated, .deleted])
        #expect(events.map(\.version) == [1, 2, 3])
        let refused6 = await refusal { try await store.delete(id: ann.id, condition: .any, traceparent: "t") }
        #expect(refused6 == .notFound)
        // The email is free again.
        _ = try await createdUser(store, "Ann again", "ann@example.com")
    }

    /// With the fingerprints the API builds (`IdempotencyKey(key:name:email:)`), so the backend stores those.
    static func idempotencyKeys(_ store: any UserStore, _ outbox: any Outbox) async throws {
        let key = IdempotencyKey(key: "k-1", name: "Ann", email: "ann@example.com")
        let first = try await store.create(name: "Ann", email: "ann@example.com", traceparent: "t", idempotency: key)
        guard case .created(let user) = first else { throw ConformanceFailure("expected a new user, got \(first)") }
        _ = try await store.update(id: user.id, patch: UserPatch(name: "Anna"), condition: .any, traceparent: "t")
        // A retry replays the user as first created, even though it changed since, and writes nothing.
        #expect(try await store.create(name: "Ann", email: "ann@example.com", traceparent: "t", idempotency: key) == .replayed(user))
        let refused7 = await refusal {
                try await store.create(
                    name: "Bob", email: "bob@example.com", traceparent: "t",
                    idempotency: IdempotencyKey(key: "k-1", name: "Bob", email: "bob@example.com"))
            }
        #expect(refused7 == .idempotencyKeyReused)
        #expect(try await pendingEvents(outbox).count == 2)

        // Racing retries of one new key: one creates, the others replay it.
        let racing = IdempotencyKey(key: "k-2", name: "Cy", email: "cy@example.com")
        let outcomes = try await withThrowingTaskGroup(of: CreateOutcome.self) { group in
            for _ in 0..<6 {
                group.addTask {
                    try await store.create(name: "Cy", email: "cy@example.com", traceparent: "t", idempotency: racing)
                }
            }
            return try await group.reduce(into: [CreateOutcome]()) { $0.append($1) }
        }
        let created: [User] = outcomes.compactMap { if case .created(let user) = $0 { user } else { nil } }
        let replayed: [User] = outcomes.compactMap { if case .replayed(let user) = $0 { user } else { nil } }
        #expect(created.count == 1 && replayed.count == 5 && Set(replayed.map(\.id)) == Set(created.map(\.id)))
        #expect(try await pendingEvents(outbox).count == 3)
    }

    // MARK: Through the HTTP API's handlers (the fingerprint and validation as the API makes them)

    /// A retry answers the same 201 (same body), whatever the JSON's layout; another body with the key is 422
    /// `idempotency_key_reused`, as openapi.json documents.
    static func apiIdempotency(_ store: any UserStore) async throws {
        let api = API(store)
        let body = #"{"name": "Ann Lee", "email": "ann@example.com"}"#
        let first = try await api.call(.POST, ["users"], body: body, headers: ["Idempotency-Key": "key-1"])
        #expect(first.status == .created)
        let retry = try await api.call(
            .POST, ["users"], body: #"{"email":"ann@example.com","name":"Ann Lee"}"#, headers: ["Idempotency-Key": "key-1"])
        #expect(retry.status == .created && retry.body == first.body)
        let other = await api.refusal(
            .POST, ["users"], body: #"{"name": "Ann Lee", "email": "ann2@example.com"}"#,
            headers: ["Idempotency-Key": "key-1"])
        #expect(other?.status == .unprocessableEntity && other?.error == "idempotency_key_reused")
        #expect(try await store.users(after: 0, limit: 10).users.count == 1)
    }

    /// A NUL (which PostgreSQL text cannot hold) anywhere a client can put text is a 4xx naming the field, never a
    /// 503 as if the database were down.
    static func apiRefusesText(_ store: any UserStore) async throws {
        let api = API(store)
        let created = try await api.call(.POST, ["users"], body: #"{"name": "Ann", "email": "ann@example.com"}"#)
        let id = try #require(
            (try JSONSerialization.jsonObject(with: Data(created.body)) as? [String: Any])?["id"] as? String)
        let refusals: [(HTTPMethod, [String], String?, [String: String])] = [
            (.POST, ["users"], #"{"name": "A\#0B", "email": "ab@example.com"}"#, [:]),
            (.POST, ["users"], #"{"name": "AB", "email": "a\#0b@example.com"}"#, [:]),
            (.POST, ["users"], #"{"name": "AB", "email": "ab@example.com"}"#, ["Idempotency-Key": "k\u{0}"]),
            (.GET, ["users", "u\u{0}"], nil, [:]),
            (.PATCH, ["users", "\(id)\u{0}"], #"{"name": "X"}"#, [:]),
            (.PATCH, ["users", id], #"{"name": "X\#0"}"#, [:]),
            (.DELETE, ["users", "\(id)\u{0}"], nil, [:]),
            (.GET, ["users"], nil, ["after": "1\u{0}"]),
        ]
        for (method, path, body, headers) in refusals {
            let refusal = await api.refusal(method, path, body: body, headers: headers)
            #expect(
                refusal.map { (400..<500).contains($0.status.code) } == true,
                "\(method) \(path) \(body ?? "") \(headers): \(refusal.map { "\($0.status) \($0.detail)" } ?? "accepted")")
        }
        #expect(try await store.user(id: id)?.name == "Ann")
    }

    /// The user API's routes on `store`, called without a server.
    struct API {
        var router = Router()

        init(_ store: any UserStore) {
            var logger = Logger(label: "StoreConformance.API")
            logger.logLevel = .critical
            UserAPI(store: store, logger: logger).register(in: &router)
        }

        /// Calls the route; a header named `after` goes to the query instead.
        func call(
            _ method: HTTPMethod, _ path: [String], body: String? = nil, headers: [String: String] = [:]
        ) async throws -> HTTPResponse {
            guard case .found(let route, let parameters) = router.match(method, segments: path) else {
                throw ConformanceFailure("no route for \(method) \(path)")
            }
            var httpHeaders = HTTPHeaders()
            var query: [String: String] = [:]
            for (name, value) in headers {
                if name == "after" { query[name] = value } else { httpHeaders.add(name: name, value: value) }
            }
            if body != nil { httpHeaders.add(name: "Content-Type", value: "application/json") }
            return try await route.handler(
                HTTPRequest(
                    method: method, path: "/" + path.joined(separator: "/"), query: query, headers: httpHeaders,
                    body: Array((body ?? "").utf8), pathParameters: parameters))
        }

        /// The HTTP error the call ends with; nil when it succeeded.
        func refusal(
            _ method: HTTPMethod, _ path: [String], body: String? = nil, headers: [String: String] = [:]
        ) async -> HTTPError? {
            do {
                _ = try await call(method, path, body: body, headers: headers)
                return nil
            } catch let error as HTTPError {
                return error
            } catch {
                return HTTPError(.internalServerError, error: "unexpected", detail: "\(error)")
            }
        }
    }

    static func concurrentUpdates(_ store: any UserStore, _ outbox: any Outbox) async throws {
        let ann = try await createdUser(store, "Ann", "ann@example.com")
        let count = 24
        let versions = try await withThrowingTaskGroup(of: Int64.self) { group in
            for index in 0..<count {
                group.addTask {
                    try await store.update(
                        id: ann.id, patch: UserPatch(name: "Ann \(index)"), condition: .any, traceparent: "t"
                    ).version
                }
            }
            return try await group.reduce(into: [Int64]()) { $0.append($1) }
        }
        #expect(versions.sorted() == Array(2...Int64(count + 1)))
        // In the outbox, oldest position first, the user's events are in version order with no gap or repeat.
        let events = try await pendingEvents(outbox)
        #expect(events.map(\.version) == Array(1...Int64(count + 1)))
        #expect(try await store.user(id: ann.id)?.version == Int64(count + 1))
    }

    static func outboxMarksExactlyTheGivenRows(_ store: any UserStore, _ outbox: any Outbox) async throws {
        for index in 0..<4 { _ = try await createdUser(store, "User \(index)", "u\(index)@example.com") }
        let pending = try await outbox.pending(limit: 10)
        let names = try pending.map { try UserEvent.decode(body: $0.body).name }
        #expect(names == ["User 0", "User 1", "User 2", "User 3"])
        let seqs = pending.map(\.seq)
        #expect(seqs == seqs.sorted() && Set(seqs).count == 4)
        #expect(try await outbox.pending(limit: 3) == Array(pending[..<3]))

        // Rows confirmed out of position order (as with PostgreSQL's out-of-order commits): exactly those are
        // marked, never a row between them.
        try await outbox.markSent([seqs[0], seqs[2]])
        #expect(try await outbox.pending(limit: 10) == [pending[1], pending[3]])
        #expect(try await outbox.backlog() == 2)
        try await outbox.markSent([seqs[3], seqs[1]])
        #expect(try await outbox.pending(limit: 10).isEmpty)
        #expect(try await outbox.backlog() == 0)
    }

    static func outboxPruningKeepsUnsentRows(_ store: any UserStore, _ outbox: any Outbox) async throws {
        for index in 0..<10 { _ = try await createdUser(store, "User \(index)", "u\(index)@example.com") }
        let seqs = try await outbox.pending(limit: 10).map(\.seq)
        try await outbox.markSent(Array(seqs[6...9]))
        // Rows 0-5 are unsent: never pruned, however old.
        #expect(try await outbox.pending(limit: 10).map(\.seq) == Array(seqs[0...5]))
        try await outbox.markSent(Array(seqs[0...5]))
        #expect(try await outbox.backlog() == 0)
        _ = try await createdUser(store, "Last", "last@example.com")
        #expect(try await outbox.pending(limit: 10).count == 1)
    }

    static func usersPage(_ store: any UserStore, _ outbox: any Outbox) async throws {
        var created: [User] = []
        for index in 0..<5 { created.append(try await createdUser(store, "User \(index)", "u\(index)@example.com")) }
        let first = try await store.users(after: 0, limit: 2)
        #expect(first.users == Array(created[..<2]))
        let next = try #require(first.next)
        let second = try await store.users(after: next, limit: 10)
        #expect(second.users == Array(created[2...]) && second.next == nil)
    }

    // MARK: Helpers

    static func createdUser(_ store: any UserStore, _ name: String, _ email: String) async throws -> User {
        let outcome = try await store.create(name: name, email: email, traceparent: "t", idempotency: nil)
        guard case .created(let user) = outcome else { throw ConformanceFailure("expected a new user, got \(outcome)") }
        return user
    }

    static func pendingEvents(_ outbox: any Outbox) async throws -> [UserEvent] {
        try await outbox.pending(limit: 1_000).map { try UserEvent.decode(body: $0.body) }
    }

    static func refusal<T>(_ body: () async throws -> T) async -> UserStoreError? {
        do {
            _ = try await body()
            return nil
        } catch {
            return error as? UserStoreError
        }
    }
}

/// A conformance case that could not go on.
struct ConformanceFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
