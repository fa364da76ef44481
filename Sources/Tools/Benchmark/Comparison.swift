import Foundation

/// Sets one run's figures beside an earlier run's (`--compare <report.json>`).
public enum Comparison {
    /// One named figure of a report.
    public struct Figure: Sendable, Equatable {
        /// Unique within a report, e.g. `closed-1 POST p50 ms`.
        public var name: String
        /// The value.
        public var value: Double
    }

    /// Every figure worth comparing, in the order the table shows them.
    public static func figures(_ report: BenchmarkReport) -> [Figure] {
        var figures: [Figure] = []
        func add(_ name: String, _ value: Double?) {
            if let value, value.isFinite { figures.append(Figure(name: name, value: value)) }
        }
        for phase in report.phases {
            add("\(phase.name) POST req/s", phase.requestsPerSecond)
            add("\(phase.name) POST p50 ms", phase.latency.p50)
            add("\(phase.name) POST p99 ms", phase.latency.p99)
        }
        for entry in report.endToEnd {
            add("\(entry.scope) e2e events/s", entry.eventsPerSecond)
            add("\(entry.scope) e2e lag p99 ms", entry.lag.p99)
        }
        if let ceiling = report.ceiling {
            add("ceiling msg/s (\(ceiling.client ?? "Messaging, one at a time"))", ceiling.messagesPerSecond)
            add("ceiling msg/s (Messaging, same shape)", ceiling.messagingMessagesPerSecond)
            add("best phase e2e / ceiling", ceiling.bestPhaseFraction)
            add("whole run e2e / ceiling", ceiling.systemFraction)
        }
        for cost in report.costs ?? [] {
            add("\(cost.phase) CPU ms/event (services)", cost.cpuMsPerEvent)
            add("\(cost.phase) switches/event (services)", cost.switchesPerEvent)
            add("\(cost.phase) CPU % (services)", cost.cpuPercent)
            for process in cost.processes {
                add("\(cost.phase) \(process.name) CPU ms/event", process.cpuMsPerEvent)
                add("\(cost.phase) \(process.name) switches/event", process.switchesPerEvent)
            }
        }
        for process in report.processes {
            add("\(process.name) peak RSS MiB", process.peakRSSMiB)
            add("\(process.name) CPU ms/event (whole run)", process.cpuMsPerEvent)
            add("\(process.name) idle CPU s", process.idleCPUSeconds)
        }
        return figures
    }

    /// A table: each figure of `current`, the earlier run's value and the change; then figures only the earlier
    /// run has.
    public static func render(earlier: BenchmarkReport, current: BenchmarkReport) -> String {
        let before = figures(earlier)
        let now = figures(current)
        var earlierValues: [String: Double] = [:]
        for figure in before { earlierValues[figure.name] = figure.value }
        let names = Set(now.map(\.name))
        var lines = [
            "Compared with the run of \(earlier.startedAt)",
            row("figure", "earlier", "this run", "change"),
        ]
        for figure in now {
            let old = earlierValues[figure.name]
            lines.append(row(figure.name, old.map(number) ?? "-", number(figure.value), change(from: old, to: figure.value)))
        }
        for figure in before where !names.contains(figure.name) {
            lines.append(row(figure.name, number(figure.value), "-", "not measured"))
        }
        return lines.joined(separator: "\n")
    }

    /// `+12.5 %`, `-3.0 %`, `0 %`; `new` without an earlier value, and the absolute change from zero.
    static func change(from old: Double?, to new: Double) -> String {
        guard let old else { return "new" }
        if old == new { return "0 %" }
        if old == 0 { return (new > 0 ? "+" : "") + number(new) }
        let percent = (new - old) / abs(old) * 100
        return (percent > 0 ? "+" : "") + String(format: "%.1f %%", percent)
    }

    static func number(_ value: Double) -> String {
        if value == value.rounded(), abs(value) < 1e12 { return String(Int(value)) }
        return abs(value) >= 100 ? String(format: "%.0f", value) : String(format: "%.3g", value)
    }

    static func row(_ name: String, _ earlier: String, _ current: String, _ change: String) -> String {
        func pad(_ text: String, _ width: Int) -> String {
            String(repeating: " ", count: max(1, width - text.count)) + text
        }
        return name.padding(toLength: max(48, name.count), withPad: " ", startingAt: 0) + pad(earlier, 12)
            + pad(current, 12) + pad(change, 12)
    }
}
