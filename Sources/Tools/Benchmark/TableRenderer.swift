import Foundation

/// Renders a report as the plain-text table printed at the end of a run.
public enum TableRenderer {
    /// The whole table.
    public static func render(_ report: BenchmarkReport) -> String {
        var out: [String] = []
        if !report.phases.isEmpty {
            out.append("HTTP POST /users")
            out.append(
                row(["phase", "conns", "requests", "req/s", "p50 ms", "p90 ms", "p99 ms", "p99.9", "max ms", "errors"]))
            for phase in report.phases {
                let name = phase.targetRate.map { "\(phase.name) @\(Int($0))/s" } ?? phase.name
                out.append(
                    row([
                        name, "\(phase.connections)", "\(phase.requests)", fixed(phase.requestsPerSecond, 0),
                        fixed(phase.latency.p50, 2), fixed(phase.latency.p90, 2), fixed(phase.latency.p99, 2),
                        fixed(phase.latency.p999, 2), fixed(phase.latency.max, 1), errors(phase.errors),
                    ]))
            }
            out.append("")
        }
        if !report.endToEnd.isEmpty {
            out.append("End to end (POST -> snapshot committed in the order DB)")
            out.append(row(["scope", "created", "snapshots", "events/s", "seconds", "lag p50 ms", "lag p99 ms", "lag max ms"]))
            for entry in report.endToEnd {
                out.append(
                    row([
                        entry.scope, "\(entry.created)", "\(entry.events)", fixed(entry.eventsPerSecond, 0),
                        fixed(entry.seconds, 1), fixed(entry.lag.p50, 0), fixed(entry.lag.p99, 0), fixed(entry.lag.max, 0),
                    ]))
            }
            out.append("")
        }
        if let ceiling = report.ceiling {
            out.append(
                "Broker ceiling (A -> forwarder -> B; persistent, durable \(ceiling.queueType ?? "classic") queues, "
                    + "confirms, multiple acks, prefetch \(ceiling.prefetch), \(ceiling.bodyBytes)-byte bodies, "
                    + "batches of \(ceiling.batchSize))")
            out.append(row(["client", "messages", "seconds", "msg/s e2e", "publish/s", "of ceiling"]))
            out.append(
                row([
                    ceiling.client ?? "Messaging (old)", "\(ceiling.messages)", fixed(ceiling.seconds, 2),
                    fixed(ceiling.messagesPerSecond, 0), fixed(ceiling.publishPerSecond, 0), "100 %",
                ]))
            if let ours = ceiling.messagingMessagesPerSecond {
                out.append(
                    row([
                        "Messaging module", "\(ceiling.messages)", ceiling.messagingSeconds.map { fixed($0, 2) } ?? "-",
                        fixed(ours, 0), "-", ceiling.messagingFraction.map { fixed($0 * 100, 1) + " %" } ?? "-",
                    ]))
            }
            out.append(
                "system end to end / ceiling: whole run "
                    + (ceiling.systemFraction.map { fixed($0 * 100, 1) + " %" } ?? "-") + ", best phase "
                    + (ceiling.bestPhaseFraction.map { fixed($0 * 100, 1) + " %" } ?? "-"))
            out.append("")
        }
        if let costs = report.costs, !costs.isEmpty {
            let names = costs.first?.processes.map(\.name) ?? []
            out.append("Cost per event (from /proc/<pid>/task/*; each phase until its last snapshot committed)")
            out.append(
                row(["phase", "events", "CPU %", "CPU ms/ev", "switch/ev"] + names.map { "\(short($0)) ms/sw" }))
            for cost in costs {
                let perProcess = names.map { name -> String in
                    guard let process = cost.processes.first(where: { $0.name == name }) else { return "-" }
                    if cost.events == 0 { return "\(fixed(process.cpuSeconds * 1000, 0)) ms \(process.contextSwitches)" }
                    return (process.cpuMsPerEvent.map { fixed($0, 3) } ?? "-") + "/"
                        + (process.switchesPerEvent.map { fixed($0, 1) } ?? "-")
                }
                out.append(
                    row(
                        [
                            cost.phase, "\(cost.events)", fixed(cost.cpuPercent, 0),
                            cost.cpuMsPerEvent.map { fixed($0, 3) } ?? "-", cost.switchesPerEvent.map { fixed($0, 1) } ?? "-",
                        ] + perProcess))
            }
            out.append("(CPU ms/ev and switch/ev: the three services summed; idle: CPU ms and switches in total)")
            out.append("")
        }
        if !report.processes.isEmpty {
            let idle = report.idleSeconds.map { "idle CPU s (\(fixed($0, 0)) s)" } ?? "idle CPU s"
            out.append("Processes")
            out.append(row(["process", "peak RSS MiB", "CPU s", "CPU ms/event", idle]))
            for process in report.processes {
                out.append(
                    row([
                        process.name, fixed(process.peakRSSMiB, 1), fixed(process.cpuSeconds, 2),
                        process.cpuMsPerEvent.map { fixed($0, 3) } ?? "-",
                        process.idleCPUSeconds.map { fixed($0, 3) } ?? "-",
                    ]))
            }
            out.append("")
        }
        if let targets = report.targets, !targets.isEmpty {
            out.append("Targets")
            for target in targets {
                let verdict = target.met.map { $0 ? "met   " : "MISSED" } ?? "n/a   "
                let measured = target.measured.map { fixed($0, 3) } ?? "not measured"
                out.append("  \(verdict) \(target.name): \(measured) \(target.comparison) \(fixed(target.limit, 2)) \(target.unit)")
            }
            out.append("")
        }
        for note in report.notes { out.append("note: \(note)") }
        return out.joined(separator: "\n")
    }

    static func row(_ cells: [String]) -> String {
        let widths = [22, 7, 10, 10, 10, 10, 10, 10, 10, 14]
        var line = ""
        for (index, cell) in cells.enumerated() {
            let width = index < widths.count ? widths[index] : 10
            let padding = max(1, width - cell.count)
            line += index == 0 ? cell + String(repeating: " ", count: padding) : String(repeating: " ", count: padding) + cell
        }
        return line
    }

    /// `user`, `notif`, `order` (with `-2` and so on for further instances), or the name as it is.
    static func short(_ name: String) -> String {
        for (long, short) in [("user-service", "user"), ("notification-service", "notif"), ("order-service", "order")]
        where name.hasPrefix(long) {
            return short + name.dropFirst(long.count)
        }
        return name
    }

    static func fixed(_ value: Double, _ digits: Int) -> String {
        guard value.isFinite else { return "-" }
        return String(format: "%.\(digits)f", value)
    }

    static func errors(_ errors: [String: Int]) -> String {
        guard !errors.isEmpty else { return "0" }
        return errors.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }.joined(separator: " ")
    }
}
