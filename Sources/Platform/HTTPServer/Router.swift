public import NIOHTTP1

/// Maps a method and a path to a handler.
///
/// Patterns are paths whose segments are literals or `{name}` parameters, e.g. `"/users/{id}"`. Empty segments
/// are ignored on both sides, so `"/users/"` matches `"/users"`. When several patterns match, the one with a
/// literal at the first differing segment wins (`"/users/me"` before `"/users/{id}"`). A `HEAD` request with no
/// `HEAD` route uses the `GET` route and is answered without the body.
public struct Router: Sendable {
    struct Route: Sendable {
        enum Segment: Sendable, Equatable {
            case literal(String)
            case parameter(String)
        }

        var method: HTTPMethod
        var pattern: String
        var segments: [Segment]
        var acceptsJSON: Bool
        var handler: @Sendable (HTTPRequest) async throws -> HTTPResponse

        /// The parameters bound by matching `path`, or `nil` when the route does not match it.
        func match(_ path: [String]) -> [String: String]? {
            guard path.count == self.segments.count else { return nil }
            var parameters: [String: String] = [:]
            for (segment, value) in zip(self.segments, path) {
                switch segment {
                case .literal(let literal) where literal == value: continue
                case .literal: return nil
                case .parameter(let name): parameters[name] = value
                }
            }
            return parameters
        }

        /// True when `self` is more specific than `other`: a literal where `other` has a parameter, at the first
        /// segment where they differ in kind.
        func isMoreSpecific(than other: Route) -> Bool {
            for (mine, theirs) in zip(self.segments, other.segments) {
                switch (mine, theirs) {
                case (.literal, .parameter): return true
                case (.parameter, .literal): return false
                default: continue
                }
            }
            return false
        }
    }

    enum Match {
        case found(Route, pathParameters: [String: String])
        case methodNotAllowed(allowed: [String])
        case notFound
    }

    private var table: [Route] = []

    /// Creates an empty router.
    public init() {}

    /// Registers a handler for a method and a path pattern such as `"/users/{id}"`.
    ///
    /// `acceptsJSON: true` means: a request with a non-empty body whose `Content-Type` is not `application/json`
    /// (parameters like `charset` allowed) gets 415 without reaching the handler.
    /// Registering the same method and pattern twice, or a pattern not starting with `/`, is a programming error.
    public mutating func add(
        _ method: HTTPMethod, _ pattern: String, acceptsJSON: Bool = false,
        _ handler: @escaping @Sendable (HTTPRequest) async throws -> HTTPResponse
    ) {
        precondition(pattern.hasPrefix("/"), "route pattern must start with '/': \(pattern)")
        let segments: [Route.Segment] = pattern.split(separator: "/").map { raw in
            if raw.hasPrefix("{") && raw.hasSuffix("}") && raw.count > 2 {
                return .parameter(String(raw.dropFirst().dropLast()))
            }
            return .literal(String(raw))
        }
        precondition(
            !self.table.contains { $0.method == method && $0.segments == segments },
            "route registered twice: \(method) \(pattern)")
        self.table.append(
            Route(method: method, pattern: pattern, segments: segments, acceptsJSON: acceptsJSON, handler: handler))
    }

    /// The registered routes in registration order, e.g. to check them against an API document.
    public var routes: [(method: HTTPMethod, pattern: String)] {
        self.table.map { (method: $0.method, pattern: $0.pattern) }
    }

    func match(_ method: HTTPMethod, segments path: [String]) -> Match {
        var candidates: [(route: Route, parameters: [String: String])] = []
        for route in self.table {
            if let parameters = route.match(path) {
                candidates.append((route, parameters))
            }
        }
        guard !candidates.isEmpty else { return .notFound }

        func best(for method: HTTPMethod) -> (route: Route, parameters: [String: String])? {
            var best: (route: Route, parameters: [String: String])?
            for candidate in candidates where candidate.route.method == method {
                if let current = best, !candidate.route.isMoreSpecific(than: current.route) { continue }
                best = candidate
            }
            return best
        }
        if let found = best(for: method) ?? (method == .HEAD ? best(for: .GET) : nil) {
            return .found(found.route, pathParameters: found.parameters)
        }
        var allowed: [String] = []
        for candidate in candidates where !allowed.contains(candidate.route.method.rawValue) {
            allowed.append(candidate.route.method.rawValue)
        }
        if allowed.contains("GET") && !allowed.contains("HEAD") {
            allowed.append("HEAD")
        }
        return .methodNotAllowed(allowed: allowed)
    }
}
