import Foundation
import NotificationService
import Testing

/// The routing-table parser against any text an operator (or a broken editor) may put in the file.
///
/// Properties: parsing never crashes; it returns a table or throws a ``RoutingTableError`` with a message; a
/// returned table only routes to valid queue names, each list non-empty and without repeats; and the table
/// written back out as JSON parses to the same table.
struct RoutingTableFuzzTests {
    @Test func generatedTables() {
        Fuzz.run("routing-table.generated", cases: 1_500, seed: 0x7A1) { fuzzCase in
            let text = RoutingTableGenerator.document(&fuzzCase.random)
            fuzzCase.note(input: text)
            Self.check(text, fuzzCase)
        }
    }

    @Test func mutatedTables() {
        Fuzz.run("routing-table.mutations", cases: 1_500, seed: 0x7A2) { fuzzCase in
            let valid = RoutingTableGenerator.document(&fuzzCase.random, valid: true)
            let bytes = Mutation.mutate(
                Array(valid.utf8), count: 4, using: &fuzzCase.random, interesting: RoutingTableGenerator.interestingBytes)
            let text = String(decoding: bytes, as: UTF8.self)
            fuzzCase.note(input: text)
            Self.check(text, fuzzCase)
        }
    }

    @Test func randomText() {
        Fuzz.run("routing-table.random-text", cases: 1_000, seed: 0x7A3) { fuzzCase in
            let count = fuzzCase.random.length(upTo: 2_048)
            let bytes = fuzzCase.random.bytes(count: count, interesting: RoutingTableGenerator.interestingBytes)
            let text = String(decoding: bytes, as: UTF8.self)
            fuzzCase.note(input: text)
            Self.check(text, fuzzCase)
        }
    }

    /// Valid tables in every style the generator knows parse, and to the table they describe.
    @Test func validTablesParse() {
        Fuzz.run("routing-table.valid", cases: 500, seed: 0x7A4) { fuzzCase in
            let (text, expected) = RoutingTableGenerator.validDocument(&fuzzCase.random)
            fuzzCase.note(input: text)
            do {
                let table = try RoutingTable.parse(text)
                #expect(table == expected, "\(fuzzCase)")
            } catch {
                Issue.record("a valid table was refused: \(error); \(fuzzCase)\n\(text)")
            }
        }
    }

    // MARK: Properties

    static func check(_ text: String, _ fuzzCase: FuzzCase) {
        let table: RoutingTable
        do {
            table = try RoutingTable.parse(text)
        } catch {
            #expect(!error.message.isEmpty, "\(fuzzCase)")
            return
        }
        for (event, destinations) in table.routes {
            #expect(!event.isEmpty, "\(fuzzCase)")
            Self.checkDestinations(destinations, fuzzCase)
        }
        if !table.defaultRoute.isEmpty { Self.checkDestinations(table.defaultRoute, fuzzCase) }
        #expect(table.allDestinations == Set(table.routes.values.joined()).union(table.defaultRoute).sorted())

        let written = RoutingTableGenerator.json(table)
        do {
            #expect(try RoutingTable.parse(written) == table, "the table written as JSON differs; \(fuzzCase)")
        } catch {
            Issue.record("the table written as JSON does not parse: \(error); \(fuzzCase)\n\(written)")
        }
    }

    static func checkDestinations(_ destinations: [String], _ fuzzCase: FuzzCase) {
        #expect(!destinations.isEmpty, "\(fuzzCase)")
        #expect(Set(destinations).count == destinations.count, "\(fuzzCase)")
        for queue in destinations {
            let valid =
                !queue.isEmpty && queue.utf8.count <= 255 && !queue.hasPrefix("amq.")
                && queue.unicodeScalars.allSatisfy {
                    $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "_-.:".unicodeScalars.contains($0))
                }
            #expect(valid, "routes to an invalid queue name '\(queue)'; \(fuzzCase)")
            let loops = queue == "queue_dispatch" || queue == "queue_unrouted" || queue.hasSuffix(".dead")
            #expect(!loops, "routes to '\(queue)', which would loop; \(fuzzCase)")
        }
    }
}

/// Routing-table documents: valid ones in block, flow and JSON style, and broken ones with every YAML feature a
/// hand-edited file may contain (anchors, aliases, tags, several documents, tabs, odd scalars).
enum RoutingTableGenerator {
    static let interestingBytes: [UInt8] = Array("{}[]:,-#&*!|>'\"%@`?~ \t\n\r.amq_queue0".utf8) + [0x00, 0xEF, 0xBB, 0xBF, 0xFF]

    static let events = ["user_created", "user_updated", "user_deleted", "order_placed", "e", "ユーザー"]
    /// Queues a table may route to (never the router's own queue, a dead-letter queue or `queue_unrouted`).
    static let queues = ["queue_order", "queue_audit", "queue_misc", "q.audit", "a:b", "Q-1", "x"]

    /// A valid document and the table it describes.
    static func validDocument(_ random: inout FuzzRandom) -> (String, RoutingTable) {
        var routes: [String: [String]] = [:]
        for event in events where random.chance(0.5) {
            routes[event] = Array(queues.shuffled(using: &random).prefix(random.int(1...3)))
        }
        let defaultRoute = random.chance(0.3) ? Array(queues.shuffled(using: &random).prefix(random.int(1...2))) : []
        let table = try! RoutingTable(routes: routes, defaultRoute: defaultRoute)
        switch random.int(0...2) {
        case 0: return (json(table), table)
        case 1: return (flow(table), table)
        default: return (block(table, random: &random), table)
        }
    }

    /// Any document; `valid: true` for one that parses (the base for mutations).
    static func document(_ random: inout FuzzRandom, valid: Bool = false) -> String {
        if valid || random.chance(0.2) { return validDocument(&random).0 }
        var lines: [String] = []
        if random.chance(0.1) { lines.append(random.pick(["%YAML 1.1", "---", "--- !!map", "# routes", "\u{FEFF}"])) }
        if random.chance(0.9) {
            lines.append(random.pick(["routes:", "routes: &r", "routes: !!map", "\"routes\":", "routes :", "ROUTES:"]))
            for _ in 0..<random.int(0...5) {
                lines.append(
                    indent(&random) + scalar(&random, from: events) + ":" + random.pick([" ", "", "  "])
                        + value(&random))
            }
        }
        if random.chance(0.3) { lines.append("default: " + value(&random)) }
        if random.chance(0.1) { lines.append(random.pick(["extra: 1", "routes: {}", "<<: *r", "? complex\n: key", "---"])) }
        if random.chance(0.05) {
            // Deep flow nesting.
            let depth = random.pick([100, 1_000, 10_000])
            lines.append("default: " + String(repeating: "[", count: depth) + String(repeating: "]", count: depth))
        }
        return lines.joined(separator: random.chance(0.95) ? "\n" : "\r\n")
    }

    static func indent(_ random: inout FuzzRandom) -> String {
        random.pick(["  ", "  ", "    ", " ", "\t", ""])
    }

    static func scalar(_ random: inout FuzzRandom, from names: [String]) -> String {
        switch random.int(0...9) {
        case 0: return random.pick(["", "~", "null", "true", "123", "0x1F", "1e3", ".nan", "-", "amq.direct"])
        case 1: return "\"" + random.pick(names) + random.pick(["", "\\t", "\\u00e9", "\\x", "\\\""]) + "\""
        case 2: return "'" + random.pick(names) + random.pick(["", "''", " "]) + "'"
        case 3: return random.pick(["!!str ", "!!int ", "!!binary ", "!custom ", "&a ", "*a"]) + random.pick(names)
        case 4: return String(repeating: random.pick(names), count: random.pick([2, 40, 300]))
        case 5: return random.pick(names) + random.pick([" ", "#x", " #c", ":", ": x", ",", "[", "queue order"])
        default: return random.pick(names)
        }
    }

    static func value(_ random: inout FuzzRandom) -> String {
        switch random.int(0...9) {
        case 0, 1, 2:
            let items = (0..<random.int(0...4)).map { _ in scalar(&random, from: queues) }
            return "[" + items.joined(separator: random.pick([", ", ",", " , "])) + "]"
        case 3, 4:
            let items = (0..<random.int(1...3)).map { _ in "\n" + "    - " + scalar(&random, from: queues) }
            return items.joined()
        case 5: return scalar(&random, from: queues)
        case 6: return random.pick(["", "~", "[]", "{}", "{a: b}", "- x", "|\n  text", ">\n  folded", "&q [queue_order]"])
        case 7: return random.pick(["*q", "*undefined", "[*q]", "!!seq [queue_order]", "!!set {queue_order}"])
        case 8: return random.pick(["[[queue_order]]", "[queue_order, [x]]", "{queue_order: 1}", "[1, 2]", "[null]"])
        default: return "[queue_order, queue_order]"
        }
    }

    /// The table as JSON (which is YAML too).
    static func json(_ table: RoutingTable) -> String {
        var object: [String: Any] = ["routes": table.routes]
        if !table.defaultRoute.isEmpty { object["default"] = table.defaultRoute }
        let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }

    /// The table in YAML flow style.
    static func flow(_ table: RoutingTable) -> String {
        let routes = table.routes.sorted { $0.key < $1.key }.map { "\($0.key): [\($0.value.joined(separator: ", "))]" }
        var text = "{routes: {\(routes.joined(separator: ", "))}"
        if !table.defaultRoute.isEmpty { text += ", default: [\(table.defaultRoute.joined(separator: ", "))]" }
        return text + "}"
    }

    /// The table in YAML block style, with comments.
    static func block(_ table: RoutingTable, random: inout FuzzRandom) -> String {
        var lines = ["# routing table", "routes:"]
        if table.routes.isEmpty { lines[1] = "routes: {}" }
        for (event, queues) in table.routes.sorted(by: { $0.key < $1.key }) {
            if random.chance(0.5) {
                lines.append("  \(event): [\(queues.joined(separator: ", "))]  # \(queues.count)")
            } else {
                lines.append("  \(event):")
                lines += queues.map { "    - \($0)" }
            }
        }
        if !table.defaultRoute.isEmpty {
            lines.append("default:")
            lines += table.defaultRoute.map { "  - \($0)" }
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
