import Common
import HTTPServer
import NIOHTTP1
import Logging
import Storage

/// The HTTP API of the user service.
struct UserAPI: Sendable {
    let store: UserStore
    let relay: OutboxRelay
    let logger: Logger

    private struct CreateUser: Decodable {
        var name: String
        var email: String
    }

    private struct UserBody: Encodable {
        var id: String
        var name: String
        var email: String
        var version: Int64
        var created_at: String
        var updated_at: String

        init(_ user: User) {
            id = user.id
            name = user.name
            email = user.email
            version = user.version
            created_at = user.createdAt
            updated_at = user.updatedAt
        }
    }

    func register(in router: inout Router) {
        router.add(.POST, "/users", acceptsJSON: true) { request in try await create(request) }
        router.add(.GET, "/users/{id}") { request in try await show(request) }
    }

    private func create(_ request: HTTPRequest) async throws -> HTTPResponse {
        let input = try request.decodeJSON(CreateUser.self)
        let name = try UserValidation.name(input.name)
        let email = try UserValidation.email(input.email)
        let traceparent = TraceContext.continuing(request.headers.first(name: "traceparent"))
        let user: User
        do {
            user = try await store.createUser(name: name, email: email, traceparent: traceparent)
        } catch UserStoreError.emailTaken {
            throw HTTPError(.conflict, error: "email_taken", detail: "a user with email '\(email)' already exists")
        } catch let error as DatabaseError {
            throw unavailable(error)
        }
        relay.notify()
        logger.info(
            "user created", metadata: ["user_id": "\(user.id)", "traceparent": "\(traceparent)"])
        return .json(
            UserBody(user), status: .created,
            headers: ["Location": "/users/\(user.id)", "ETag": "\"\(user.version)\"", "traceparent": traceparent])
    }

    private func show(_ request: HTTPRequest) async throws -> HTTPResponse {
        let id = request.pathParameters["id"] ?? ""
        let found: User?
        do {
            found = try await store.user(id: id)
        } catch let error as DatabaseError {
            throw unavailable(error)
        }
        guard let user = found else {
            throw HTTPError(.notFound, error: "not_found", detail: "no user with id '\(id)'")
        }
        return .json(UserBody(user), headers: ["ETag": "\"\(user.version)\""])
    }

    /// A database that cannot be written or read: the request is refused as a whole, nothing half-written.
    private func unavailable(_ error: DatabaseError) -> HTTPError {
        logger.error("database error", metadata: ["error": "\(error)"])
        return HTTPError(
            .serviceUnavailable, error: "database_unavailable",
            detail: "the user database cannot be used right now; retry later")
    }
}
