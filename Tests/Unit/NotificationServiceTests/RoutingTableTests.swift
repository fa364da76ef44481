import EventCodec
import Foundation
import Logging
import Messaging
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

    /// A destination that would make an event loop (the router's own source), or mix routed events with messages set
    /// aside (any `*.dead` queue, `queue_unrouted`), is refused wherever it appears: in a route or in the default.
    @Test(arguments: [
        ("routes:\n  user_created: [queue_dispatch]", "routes.user_created: 'queue_dispatch'"),
        ("routes:\n  user_created: [queue_order, queue_order.dead]", "routes.user_created: 'queue_order.dead'"),
        ("routes:\n  user_updated: [queue_dispatch.dead]", "routes.user_updated: 'queue_dispatch.dead'"),
        ("routes:\n  user_created: [queue_order]\ndefault: queue_dispatch", "default: 'queue_dispatch'"),
        ("routes:\n  user_created: [queue_order]\ndefault: [x.dead]", "default: 'x.dead'"),
        ("routes:\n  user_deleted: [queue_unrouted]", "routes.user_deleted: 'queue_unrouted'"),
        (#"{"routes": {"user_created": ["queue_dispatch"]}}"#, "routes.user_created: 'queue_dispatch'"),
    ])
    func destinationsThatLoopAreRefused(text: String, expected: String) {
        do {
            let table = try RoutingTable.parse(text)
            Issue.record("accepted a looping table: \(table)")
        } catch {
            #expect(error.description.contains(expected), "\(error.description)")
            #expect(error.description.contains("cannot be a destination"), "\(error.description)")
        }
        #expect(throws: RoutingTableError.self) { try RoutingTable(routes: ["e": ["queue_dispatch"]]) }
        #expect(throws: RoutingTableError.self) { try RoutingTable(routes: ["e": ["a"]], defaultRoute: ["a.dead"]) }
    }

    /// Queues whose names only resemble the reserved ones are fine.
    @Test func namesThatOnlyResembleReservedOnesAreAccepted() throws {
        let table = try RoutingTable.parse("routes:\n  user_created: [queue_dispatch_copy, queue_dead, dead.letters]")
        #expect(table.destinations(for: "user_created") == ["queue_dispatch_copy", "queue_dead", "dead.letters"])
    }

    /// A reload (SIGHUP) to a table that loops is refused and the table in force stays.
    @Test func aReloadToALoopingTableKeepsTheCurrentTable() async throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("routes-\(UUID().uuidString).yaml")
        defer { try? FileManager.default.removeItem(at: file) }
        try Data("routes:\n  user_created: [queue_order, queue_dispatch]\n".utf8).write(to: file)
        var logger = Logger(label: "RoutingTableTests")
        logger.logLevel = .critical
        let current = CurrentRoutingTable(.standard)
        // Never run: a refused table must be refused before anything is declared.
        let publisher = Publisher(
            configuration: try BrokerConfiguration(url: "amqp://guest:guest@127.0.0.1:1/"), declaring: [],
            logger: logger)
        let reloader = RoutingTableReloader(path: file.path, current: current, publisher: publisher, logger: logger)
        await reloader.reload()
        #expect(current.value == .standard)
    }
}
