import Logging
import Messaging
import ServiceLifecycle
import Synchronization
import UnixSignals

/// The routing table in force; swapped as a whole, so every message is routed by one table or the other.
final class CurrentRoutingTable: Sendable {
    private let table: Mutex<RoutingTable>

    init(_ table: RoutingTable) { self.table = Mutex(table) }

    var value: RoutingTable { table.withLock { $0 } }

    func replace(with new: RoutingTable) { table.withLock { $0 = new } }
}

/// Reloads the routing table file on SIGHUP. A table that does not parse or validate is refused with a log
/// line and the old one stays; a new table's destination queues are declared before it takes effect, so no
/// message is routed to a queue that does not exist. Messages being forwarded finish with the table they began with.
final class RoutingTableReloader: Service, Sendable {
    private let path: String
    private let current: CurrentRoutingTable
    private let publisher: Publisher
    private let logger: Logger

    init(path: String, current: CurrentRoutingTable, publisher: Publisher, logger: Logger) {
        self.path = path
        self.current = current
        self.publisher = publisher
        self.logger = logger
    }

    func run() async throws {
        let hangups = await UnixSignalsSequence(trapping: [.sighup])
        for await _ in hangups.cancelOnGracefulShutdown() {
            await reload()
        }
    }

    func reload() async {
        let table: RoutingTable
        do {
            table = try RoutingTable.load(path: path)
        } catch {
            logger.error("routing table reload refused, keeping the current table", metadata: ["file": "\(path)", "error": "\(error)"])
            return
        }
        do {
            try await publisher.declare(table.allDestinations)
        } catch {
            logger.error(
                "routing table reload refused: its queues could not be declared", metadata: ["error": "\(error)"])
            return
        }
        current.replace(with: table)
        logger.info("routing table reloaded", metadata: ["file": "\(path)", "routes": "\(table.summary)"])
    }
}

extension RoutingTable {
    /// `event->queue+queue ...`, for log lines.
    var summary: String {
        var parts = routes.sorted { $0.key < $1.key }.map { "\($0.key)->\($0.value.joined(separator: "+"))" }
        if !defaultRoute.isEmpty { parts.append("*->\(defaultRoute.joined(separator: "+"))") }
        return parts.joined(separator: " ")
    }
}
