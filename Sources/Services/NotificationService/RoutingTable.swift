import Common
import EventCodec
import Foundation
import Yams

/// Which queues each event type is forwarded to.
///
/// The file form (YAML, or JSON, which is YAML too):
/// ```yaml
/// routes:
///   user_created: [queue_order, queue_audit]
///   user_updated: [queue_order]
/// default: [queue_misc]   # optional: for event types not listed
/// ```
public struct RoutingTable: Sendable, Equatable {
    /// Event type to destination queues.
    public var routes: [String: [String]]
    /// Destinations for event types not in `routes`; empty means such events are unrouted.
    public var defaultRoute: [String]

    /// Creates a table, validating it: every destination a valid queue name, none named twice in one list, and none
    /// that would make a message loop or mix with messages set aside (see `reservation(of:)`).
    public init(routes: [String: [String]], defaultRoute: [String] = []) throws(RoutingTableError) {
        for (event, destinations) in routes {
            guard !event.isEmpty else { throw RoutingTableError("an event type must not be empty") }
            try Self.validate(destinations, for: "routes.\(event)")
        }
        if !defaultRoute.isEmpty { try Self.validate(defaultRoute, for: "default") }
        self.routes = routes
        self.defaultRoute = defaultRoute
    }

    /// Every user event to `queue_order`.
    public static let standard = try! RoutingTable(
        routes: Dictionary(uniqueKeysWithValues: UserEvent.Kind.allCases.map { ($0.rawValue, [QueueName.order]) }))

    /// The destinations of an event type; empty when it has no route.
    public func destinations(for eventType: String) -> [String] {
        routes[eventType] ?? defaultRoute
    }

    /// Every queue the table can route to, sorted.
    public var allDestinations: [String] {
        Array(Set(routes.values.joined()).union(defaultRoute)).sorted()
    }

    /// Parses a table from YAML or JSON text.
    public static func parse(_ text: String) throws(RoutingTableError) -> RoutingTable {
        let root: Yams.Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch {
            throw RoutingTableError("not valid YAML or JSON: \(error)")
        }
        // Yams traps when it builds a mapping whose key is a list or a mapping (`[a]: b`), so refuse those first.
        if let root, hasNonScalarKey(root) {
            throw RoutingTableError("a mapping key is a list or a mapping; keys must be plain names")
        }
        let document = root?.any
        guard let top = document as? [String: Any] else {
            throw RoutingTableError("the table must be a mapping with 'routes' (and optionally 'default')")
        }
        let unknown = Set(top.keys).subtracting(["routes", "default"])
        guard unknown.isEmpty else {
            throw RoutingTableError("unknown key(s) \(unknown.sorted().joined(separator: ", ")); expected 'routes', 'default'")
        }
        guard let rawRoutes = top["routes"] as? [String: Any] else {
            throw RoutingTableError("'routes' must be a mapping from event type to a list of queues")
        }
        var routes: [String: [String]] = [:]
        for (event, value) in rawRoutes {
            routes[event] = try queueList(value, at: "routes.\(event)")
        }
        var defaultRoute: [String] = []
        if let value = top["default"] {
            // Present but empty is a mistake, not "no default".
            defaultRoute = try queueList(value, at: "default")
            try validate(defaultRoute, for: "default")
        }
        return try RoutingTable(routes: routes, defaultRoute: defaultRoute)
    }

    /// Reads and parses a table file.
    public static func load(path: String) throws(RoutingTableError) -> RoutingTable {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8)
        else {
            throw RoutingTableError("cannot read routing table file '\(path)'")
        }
        return try parse(text)
    }

    private static func hasNonScalarKey(_ node: Yams.Node) -> Bool {
        switch node {
        case .scalar, .alias: false
        case .mapping(let mapping): mapping.contains { $0.key.scalar == nil || hasNonScalarKey($0.value) }
        case .sequence(let sequence): sequence.contains(where: hasNonScalarKey)
        }
    }

    private static func queueList(_ value: Any, at key: String) throws(RoutingTableError) -> [String] {
        if let single = value as? String { return [single] }
        guard let list = value as? [Any], list.allSatisfy({ $0 is String }) else {
            throw RoutingTableError("\(key) must be a list of queue names")
        }
        return list.compactMap { $0 as? String }
    }

    private static func validate(_ destinations: [String], for key: String) throws(RoutingTableError) {
        guard !destinations.isEmpty else { throw RoutingTableError("\(key) must name at least one queue") }
        guard Set(destinations).count == destinations.count else {
            throw RoutingTableError("\(key) names a queue twice")
        }
        for queue in destinations {
            let allowed = queue.utf8.allSatisfy { byte in
                (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                    || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".")
                    || byte == UInt8(ascii: ":")
            }
            guard !queue.isEmpty, queue.utf8.count <= 255, allowed, !queue.hasPrefix("amq.") else {
                throw RoutingTableError(
                    "\(key): '\(queue)' is not a valid queue name (letters, digits, _ - . :, at most 255, not amq.*)")
            }
            if let why = reservation(of: queue) {
                throw RoutingTableError("\(key): '\(queue)' cannot be a destination: \(why)")
            }
        }
    }

    /// Why `queue` may never be a destination, or nil: the router's own source (each forwarded copy would come back
    /// to be forwarded again, forever), a dead-letter queue (`*.dead`: a routed event would look like a failure, and
    /// an operator's requeue would send it round again) or `queue_unrouted` (kept for events without a route).
    private static func reservation(of queue: String) -> String? {
        if queue == QueueName.dispatch { return "it is the queue the router consumes, so the event would loop" }
        if queue.hasSuffix(QueueName.deadLetter(for: "")) { return "dead-letter queues hold failed messages only" }
        if queue == QueueName.unrouted { return "it holds the events that have no route" }
        return nil
    }
}

/// A routing table that cannot be used, with the reason.
public struct RoutingTableError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What is wrong.
    public var message: String

    init(_ message: String) { self.message = message }

    public var description: String { message }
}
