import Common
import Foundation
import HTTPServer
import Logging
import NIOHTTP1
import ServiceRuntime

/// The HTTP API of the user service. `openapi.json` (served at `/openapi.json`) documents it; a test keeps
/// the two in step.
struct UserAPI: Sendable {
    let store: any UserStore
    let logger: Logger

    func register(in router: inout Router) {
        router.add(.POST, "/users", acceptsJSON: true) { request in try await traced(request, create) }
        router.add(.GET, "/users") { request in try await list(request) }
        router.add(.GET, "/users/{id}") { request in try await show(request) }
        router.add(.PATCH, "/users/{id}", acceptsJSON: true) { request in try await traced(request, update) }
        router.add(.DELETE, "/users/{id}") { request in try await traced(request, delete) }
        let document = Self.openAPIDocument
        router.add(.GET, "/openapi.json") { _ in
            HTTPResponse(status: .ok, headers: ["Content-Type": "application/json"], body: document)
        }
    }

    /// `openapi.json`, shipped as a resource next to the executable.
    static let openAPIDocument: [UInt8] = {
        guard let url = Bundle.module.url(forResource: "openapi", withExtension: "json"),
            let data = try? Data(contentsOf: url)
        else {
            preconditionFailure("openapi.json is missing from the UserService resources")
        }
        return Array(data)
    }()

    // MARK: Routes

    private struct CreateUser: Decodable {
        var name: String
        var email: String
    }

    private func create(_ request: HTTPRequest, traceparent: String) async throws -> HTTPResponse {
        let input = try request.decodeJSON(CreateUser.self)
        let name = try UserValidation.name(input.name)
        let email = try UserValidation.email(input.email)
        var idempotency: IdempotencyKey?
        if let header = request.headers.first(name: "Idempotency-Key") {
            let key = try UserValidation.idempotencyKey(header)
            // The same request means the same fields as sent, whatever the JSON's layout.
            idempotency = IdempotencyKey(key: key, name: input.name, email: input.email)
        }
        let outcome = try await storeCall {
            try await store.create(name: name, email: email, traceparent: traceparent, idempotency: idempotency)
        }
        switch outcome {
        case .created(let user):
            logger.debug("user created", metadata: ["user_id": "\(user.id)", "traceparent": .untrusted(traceparent)])
            return userResponse(user, status: .created, headers: ["Location": "/users/\(user.id)"])
        case .replayed(let user):
            // The original 201: the user as this key created it, whatever happened to it since.
            logger.debug("idempotent retry answered with the original response", metadata: ["user_id": "\(user.id)"])
            return userResponse(user, status: .created, headers: ["Location": "/users/\(user.id)"])
        }
    }

    private func list(_ request: HTTPRequest) async throws -> HTTPResponse {
        let limit = try Page<UserBody>.limit(request)
        let after = try Pagination.position(request.query["after"])
        let page = try await storeCall { try await store.users(after: after, limit: limit) }
        return .json(Page(items: page.users.map(UserBody.init), next: page.next.map(Pagination.cursor)))
    }

    private func show(_ request: HTTPRequest) async throws -> HTTPResponse {
        let id = try UserValidation.id(request.pathParameters["id"] ?? "")
        guard let user = try await storeCall({ try await store.user(id: id) }) else {
            throw Self.notFound(id)
        }
        return userResponse(user)
    }

    private struct PatchUser: Decodable {
        var name: String?
        var email: String?
        /// Fields sent as `null`: a name or email cannot be cleared, so these are refused, not ignored.
        var nulls: [String] = []

        enum CodingKeys: String, CodingKey { case name, email }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            for key in [CodingKeys.name, .email] where container.contains(key) {
                if try container.decodeNil(forKey: key) { nulls.append(key.rawValue) }
            }
            name = try container.decodeIfPresent(String.self, forKey: .name)
            email = try container.decodeIfPresent(String.self, forKey: .email)
        }
    }

    private func update(_ request: HTTPRequest, traceparent: String) async throws -> HTTPResponse {
        let id = try UserValidation.id(request.pathParameters["id"] ?? "")
        let input = try request.decodeJSON(PatchUser.self)
        if let field = input.nulls.first { throw UserValidation.invalid(field, "must not be null") }
        guard input.name != nil || input.email != nil else {
            throw HTTPError(
                .unprocessableEntity, error: "validation_failed", detail: "empty patch: give name, email or both")
        }
        let patch = UserPatch(
            name: try input.name.map { try UserValidation.name($0) },
            email: try input.email.map { try UserValidation.email($0) })
        let condition = try Self.versionCondition(request)
        let user = try await storeCall {
            try await store.update(id: id, patch: patch, condition: condition, traceparent: traceparent)
        }
        logger.debug(
            "user updated",
            metadata: ["user_id": .untrusted(id), "version": "\(user.version)", "traceparent": .untrusted(traceparent)])
        return userResponse(user)
    }

    private func delete(_ request: HTTPRequest, traceparent: String) async throws -> HTTPResponse {
        let id = try UserValidation.id(request.pathParameters["id"] ?? "")
        let condition = try Self.versionCondition(request)
        try await storeCall { try await store.delete(id: id, condition: condition, traceparent: traceparent) }
        logger.debug("user deleted", metadata: ["user_id": .untrusted(id), "traceparent": .untrusted(traceparent)])
        return .empty(.noContent)
    }

    // MARK: Helpers

    /// Runs a route whose change starts or continues a trace: the request's `traceparent` when it is valid, else a
    /// new one. The event carries it to the other services, and the response (errors too) names it.
    private func traced(
        _ request: HTTPRequest, _ route: (HTTPRequest, _ traceparent: String) async throws -> HTTPResponse
    ) async throws -> HTTPResponse {
        let traceparent = TraceContext.continuing(request.headers.first(name: "traceparent"))
        do {
            var response = try await route(request, traceparent)
            response.headers.replaceOrAdd(name: "traceparent", value: traceparent)
            return response
        } catch var error as HTTPError {
            error.headers.replaceOrAdd(name: "traceparent", value: traceparent)
            throw error
        }
    }

    private func userResponse(_ user: User, status: HTTPResponseStatus = .ok, headers: HTTPHeaders = [:]) -> HTTPResponse {
        var headers = headers
        headers.replaceOrAdd(name: "ETag", value: "\"\(user.version)\"")
        return .json(UserBody(user), status: status, headers: headers)
    }

    /// Runs a store call, turning its refusals into HTTP errors.
    private func storeCall<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as UserStoreError {
            switch error {
            case .emailTaken:
                throw HTTPError(.conflict, error: "email_taken", detail: "a user with this email already exists")
            case .notFound:
                throw HTTPError(.notFound, error: "not_found", detail: "no such user")
            case .versionMismatch(let current):
                throw HTTPError(
                    .preconditionFailed, error: "version_mismatch",
                    detail: "If-Match does not match the user's current version \(current)",
                    headers: ["ETag": "\"\(current)\""])
            case .idempotencyKeyReused:
                throw HTTPError(
                    .unprocessableEntity, error: "idempotency_key_reused",
                    detail: "this Idempotency-Key was used with a different request")
            case .unavailable(let reason):
                // A database that cannot be written or read: the request is refused whole, nothing half-written.
                logger.error("database error", metadata: ["error": .untrusted(reason)])
                throw HTTPError(
                    .serviceUnavailable, error: "database_unavailable",
                    detail: "the user database cannot be used right now; retry later")
            }
        }
    }

    private static func notFound(_ id: String) -> HTTPError {
        HTTPError(.notFound, error: "not_found", detail: "no user with id '\(id)'")
    }

    /// `If-Match`: `*`, or one or more entity tags such as `"3"` (weak tags and bare numbers are accepted too).
    static func versionCondition(_ request: HTTPRequest) throws -> VersionCondition {
        let values = request.headers["If-Match"].flatMap { $0.split(separator: ",") }
            .map { $0.trimmingCharacters(in: .whitespaces) }
        guard !values.isEmpty else { return .any }
        if values.contains("*") { return .any }
        var versions: [Int64] = []
        for value in values {
            var tag = Substring(value)
            if tag.hasPrefix("W/") { tag = tag.dropFirst(2) }
            if tag.hasPrefix("\""), tag.hasSuffix("\""), tag.count >= 2 { tag = tag.dropFirst().dropLast() }
            guard let version = Int64(tag) else {
                // An entity tag we never issued cannot match.
                versions.append(-1)
                continue
            }
            versions.append(version)
        }
        return .oneOf(versions)
    }
}

/// A user as the API shows it (snake_case keys, as the original system's clients expect).
struct UserBody: Encodable {
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
