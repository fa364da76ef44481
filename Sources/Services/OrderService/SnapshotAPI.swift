import Foundation
import HTTPServer
import NIOHTTP1
import ServiceRuntime
import SQLiteStorage

/// The order service's read API, on its admin port.
struct SnapshotAPI: Sendable {
    let store: any SnapshotStore

    private struct SnapshotBody: Encodable {
        var user_id: String
        var name: String?
        var email: String?
        var version: Int64
        var updated_at: String

        init(_ snapshot: Snapshot) {
            user_id = snapshot.userID
            name = snapshot.name
            email = snapshot.email
            version = snapshot.version
            updated_at = snapshot.updatedAt
        }
    }

    func register(in router: inout Router) {
        router.add(.GET, "/snapshots/users") { request in try await list(request) }
        router.add(.GET, "/snapshots/users/{id}") { request in try await show(request) }
    }

    private func show(_ request: HTTPRequest) async throws -> HTTPResponse {
        let id = request.pathParameters["id"] ?? ""
        guard let snapshot = try await read({ try await store.snapshot(userID: id) }) else {
            throw HTTPError(.notFound, error: "not_found", detail: "no snapshot of user '\(id)'")
        }
        guard !snapshot.deleted else {
            throw HTTPError(
                .gone, error: "deleted", detail: "user '\(id)' was deleted (version \(snapshot.version))",
                headers: ["ETag": "\"\(snapshot.version)\""])
        }
        return .json(SnapshotBody(snapshot), headers: ["ETag": "\"\(snapshot.version)\""])
    }

    /// The most bytes the items of one page take as JSON: the user API's bound for a page of its most users (500 of
    /// about 1.3 kB). Events are held to the API's byte limits, but their text may need escaping (a control character
    /// takes six bytes) and rows stored before those limits may be larger: a page that would outgrow this ends early,
    /// with `next` where it ended.
    static let pageBytes = 700_000

    private func list(_ request: HTTPRequest) async throws -> HTTPResponse {
        let limit = try Page<SnapshotBody>.limit(request)
        let page = try await read { try await store.snapshots(after: request.query["after"] ?? "", limit: limit) }
        return .json(Self.bounded(page.snapshots.map(SnapshotBody.init), next: page.next))
    }

    /// `items` up to ``pageBytes`` of JSON (at least one), and the cursor after the last one kept.
    private static func bounded(_ items: [SnapshotBody], next: String?) -> Page<SnapshotBody> {
        let encoder = JSONEncoder()
        var bytes = 0
        for (index, item) in items.enumerated() {
            bytes += ((try? encoder.encode(item).count) ?? 0) + 1
            if index > 0 && bytes > pageBytes {
                return Page(items: Array(items[..<index]), next: items[index - 1].user_id)
            }
        }
        return Page(items: items, next: next)
    }

    private func read<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch is SnapshotStoreError {
            throw HTTPError(
                .serviceUnavailable, error: "database_unavailable", detail: "the snapshot database cannot be read right now")
        }
    }
}
