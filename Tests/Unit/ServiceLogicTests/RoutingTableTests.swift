import Common
import Testing

@testable import NotificationService

struct RoutingTableTests {
    @Test func standardTableRoutesEveryUserEventToTheOrderQueue() {
        for kind in UserEvent.Kind.allCases {
            #expect(RoutingTable.standard.destinations(for: kind.rawValue) == ["queue_order"])
        }
        #expect(RoutingTable.standard.destinations(for: "order_placed").isEmpty)
    }

    @Test func yamlWithSeveralDestinationsAndADefault() throws {
        let table = try RoutingTable.parse(
            """
            routes:
              user_created: [queue_order, queue_audit]
              user_deleted: queue_order
            default: [queue_misc]
            """)
        #expect(table.destinations(for: "user_created") == ["queue_order", "queue_audit"])
        #expect(table.destinations(for: "user_deleted") == ["queue_order"])
        #expect(table.destinations(for: "anything_else") == ["queue_misc"])
        #expect(table.allDestinations == ["queue_audit", "queue_misc", "queue_order"])
    }

    @Test func jsonIsAcceptedToo() throws {
        let table = try RoutingTable.parse(#"{"routes": {"user_created": ["a", "b"]}}"#)
        #expect(table.destinations(for: "user_created") == ["a", "b"])
        #expect(table.destinations(for: "user_updated").isEmpty)
    }

    @Test(arguments: [
        ("routes: [1, 2]", "'routes' must be a mapping"),
        ("routes:\n  user_created: []", "at least one queue"),
        ("routes:\n  user_created: [queue_order]\nextra: 1", "unknown key"),
        ("routes:\n  user_created: ['bad name!']", "not a valid queue name"),
        ("routes:\n  user_created: [amq.secret]", "not a valid queue name"),
        ("routes:\n  user_created: [a, a]", "names a queue twice"),
        ("routes:\n  user_created: [queue_order]\ndefault: []", "at least one queue"),
        ("routes:\n  user_created: {x: 1}", "list of queue names"),
        ("just a string", "must be a mapping"),
        ("routes: {unterminated", "not valid YAML"),
    ])
    func invalidTablesAreRefusedWithAReason(text: String, expected: String) {
        do {
            _ = try RoutingTable.parse(text)
            Issue.record("accepted: \(text)")
        } catch {
            #expect(error.description.contains(expected), "\(error.description)")
        }
    }

    @Test func missingFileIsAClearError() {
        #expect(throws: RoutingTableError.self) { try RoutingTable.load(path: "/nonexistent/routes.yaml") }
    }
}
