public import HTTPServer
import Messaging
import NIOHTTP1

/// What `/readyz` reports: each dependency's state, and numbers worth watching.
public struct Readiness: Sendable {
    /// Dependency name to whether it is usable, e.g. `broker` or `database`.
    public var checks: [String: Bool]
    /// Gauges shown alongside, e.g. `outbox_backlog`.
    public var gauges: [String: Int]
    /// Why a failing dependency is down, when known (e.g. `"database": "DatabaseError(full, 13): ..."`), shown under
    /// `reasons`.
    public var reasons: [String: String]

    /// Creates a report.
    public init(checks: [String: Bool], gauges: [String: Int] = [:], reasons: [String: String] = [:]) {
        self.checks = checks
        self.gauges = gauges
        self.reasons = reasons
    }

    /// Ready when every check passes.
    public var isReady: Bool { checks.values.allSatisfy { $0 } }
}

extension Router {
    /// Adds `GET /healthz` (the process is alive) and `GET /readyz` (200 when ready, else 503, with the details).
    /// `/readyz` also shows `broker_blocked`: how many of the process's broker connections the broker blocks (a
    /// memory or disk alarm). A blocked broker does not make the service unready: its work waits (in the outbox, in
    /// the queues) and flows again when the alarm clears.
    public mutating func addHealthRoutes(readiness: @escaping @Sendable () async -> Readiness) {
        add(.GET, "/healthz") { _ in .json(["status": "ok"]) }
        add(.GET, "/readyz") { _ in
            var report = await readiness()
            report.gauges["broker_blocked"] = BrokerFlowControl.blockedConnections
            return .json(ReadinessBody(report), status: report.isReady ? .ok : .serviceUnavailable)
        }
    }
}

private struct ReadinessBody: Encodable {
    let report: Readiness

    init(_ report: Readiness) { self.report = report }

    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        try container.encode(report.isReady ? "ready" : "not_ready", forKey: Key(stringValue: "status"))
        for (name, ok) in report.checks.sorted(by: { $0.key < $1.key }) {
            try container.encode(ok ? "up" : "down", forKey: Key(stringValue: name))
        }
        for (name, value) in report.gauges.sorted(by: { $0.key < $1.key }) {
            try container.encode(value, forKey: Key(stringValue: name))
        }
        if !report.reasons.isEmpty { try container.encode(report.reasons, forKey: Key(stringValue: "reasons")) }
    }
}
