import Foundation

/// Draws a report's timeline as one self-contained SVG (no scripts, fonts or links): throughput, latency and
/// CPU and context switches per second in four stacked panels, phases shaded behind them.
public enum SVGChart {
    struct Series {
        var label: String
        var color: String
        var points: [(x: Double, y: Double)]
    }

    static let width = 1000.0
    static let panelHeight = 220.0
    static let left = 70.0
    static let right = 170.0
    static let top = 56.0
    static let gap = 50.0

    /// The SVG document.
    public static func render(_ report: BenchmarkReport) -> String {
        let timeline = report.timeline
        let maxX = max(1, Double(timeline.map(\.second).max() ?? 0) + 1, report.spans.map(\.end).max() ?? 0)
        func points(_ value: (TimelinePoint) -> Double?) -> [(x: Double, y: Double)] {
            timeline.compactMap { point in value(point).map { (Double(point.second) + 0.5, $0) } }
        }
        let throughput = [
            Series(label: "HTTP 201/s", color: "#1f77b4", points: points { Double($0.requests - $0.errors) }),
            Series(label: "HTTP errors/s", color: "#d62728", points: points { $0.errors > 0 ? Double($0.errors) : nil }),
            Series(label: "snapshots/s", color: "#2ca02c", points: points { Double($0.snapshots) }),
        ]
        let latency = [
            Series(label: "HTTP p50", color: "#1f77b4", points: points(\.p50)),
            Series(label: "HTTP p99", color: "#ff7f0e", points: points(\.p99)),
            Series(label: "e2e lag p50", color: "#2ca02c", points: points(\.lagP50)),
        ]
        let palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b"]
        let names = Array(Set(timeline.flatMap(\.cpu.keys))).sorted()
        let cpu = names.enumerated().map { index, name in
            Series(label: name, color: palette[index % palette.count], points: points { $0.cpu[name] })
        }
        let switchNames = Array(Set(timeline.flatMap { Array(($0.contextSwitches ?? [:]).keys) })).sorted()
        let switches = switchNames.enumerated().map { index, name in
            Series(label: name, color: palette[index % palette.count], points: points { $0.contextSwitches?[name] })
        }
        let height = top + 4 * panelHeight + 3 * gap + 50
        var svg = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(int(width))" height="\(int(height))" \
            viewBox="0 0 \(int(width)) \(int(height))" font-family="sans-serif" font-size="11">
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(int(left))" y="24" font-size="15" font-weight="bold">\(escape(title(report)))</text>

            """
        let panels: [(String, [Series], Bool)] = [
            ("throughput (per second)", throughput, false),
            ("latency, ms (log scale)", latency, true),
            ("CPU, % of one core", cpu, false),
            ("context switches per second (all threads)", switches, false),
        ]
        for (index, panel) in panels.enumerated() {
            let y = top + Double(index) * (panelHeight + gap)
            svg += drawPanel(
                title: panel.0, series: panel.1, logScale: panel.2, y: y, maxX: maxX, spans: report.spans)
        }
        svg += "<text x=\"\(int(left + (width - left - right) / 2))\" y=\"\(int(height - 12))\" "
            + "text-anchor=\"middle\">seconds since the first request</text>\n"
        svg += "</svg>\n"
        return svg
    }

    static func title(_ report: BenchmarkReport) -> String {
        "user-events benchmark, \(report.startedAt)"
    }

    static func drawPanel(
        title: String, series: [Series], logScale: Bool, y: Double, maxX: Double, spans: [PhaseSpan]
    ) -> String {
        let plotWidth = width - left - right
        let values = series.flatMap { $0.points.map(\.y) }.filter { $0.isFinite && (!logScale || $0 > 0) }
        var low = 0.0
        let linearStep = niceStep(max(1, values.max() ?? 1) / 4)
        var high = max(1, ((values.max() ?? 1) / linearStep).rounded(.up)) * linearStep
        if logScale {
            low = pow(10, floor(log10(max(0.01, values.min() ?? 1))))
            high = pow(10, ceil(log10(max(low * 10, values.max() ?? 10))))
        }
        func sx(_ x: Double) -> Double { left + x / maxX * plotWidth }
        func sy(_ v: Double) -> Double {
            let fraction =
                logScale ? (log10(max(v, low)) - log10(low)) / (log10(high) - log10(low)) : (v - low) / (high - low)
            return y + panelHeight - min(1, max(0, fraction)) * panelHeight
        }
        var svg = "<g>\n"
        svg += "<text x=\"\(int(left))\" y=\"\(int(y - 6))\" font-weight=\"bold\">\(escape(title))</text>\n"
        for (index, span) in spans.enumerated() {
            let x0 = sx(span.start)
            let x1 = sx(span.end)
            let shade = index % 2 == 0 ? "#f2f2f2" : "#e6eef7"
            svg += "<rect x=\"\(f(x0))\" y=\"\(f(y))\" width=\"\(f(max(0, x1 - x0)))\" height=\"\(f(panelHeight))\" "
                + "fill=\"\(shade)\"/>\n"
            if x1 - x0 >= Double(span.name.count) * 6 {
                svg += "<text x=\"\(f((x0 + x1) / 2))\" y=\"\(f(y + 12))\" text-anchor=\"middle\" fill=\"#666\" "
                    + "font-size=\"10\">\(escape(span.name))</text>\n"
            }
        }
        svg += "<rect x=\"\(f(left))\" y=\"\(f(y))\" width=\"\(f(plotWidth))\" height=\"\(f(panelHeight))\" "
            + "fill=\"none\" stroke=\"#999\"/>\n"
        // Y ticks.
        let ticks: [Double] =
            logScale
            ? stride(from: log10(low), through: log10(high), by: 1).map { pow(10, $0) }
            : Array(stride(from: low, through: high + linearStep / 2, by: linearStep))
        for tick in ticks {
            let ty = sy(tick)
            svg += "<line x1=\"\(f(left))\" x2=\"\(f(left + plotWidth))\" y1=\"\(f(ty))\" y2=\"\(f(ty))\" "
                + "stroke=\"#ddd\"/>\n"
            svg += "<text x=\"\(f(left - 6))\" y=\"\(f(ty + 4))\" text-anchor=\"end\">\(label(tick))</text>\n"
        }
        // X ticks.
        let step = niceStep(maxX / 10)
        for tick in stride(from: 0.0, through: maxX, by: step) {
            let tx = sx(tick)
            svg += "<line x1=\"\(f(tx))\" x2=\"\(f(tx))\" y1=\"\(f(y + panelHeight))\" y2=\"\(f(y + panelHeight + 4))\" "
                + "stroke=\"#999\"/>\n"
            svg += "<text x=\"\(f(tx))\" y=\"\(f(y + panelHeight + 15))\" text-anchor=\"middle\">\(label(tick))</text>\n"
        }
        for (index, line) in series.enumerated() {
            if !line.points.isEmpty {
                let path = line.points.filter { !logScale || $0.y > 0 }.map { "\(f(sx($0.x))),\(f(sy($0.y)))" }
                svg += "<polyline fill=\"none\" stroke=\"\(line.color)\" stroke-width=\"1.6\" "
                    + "points=\"\(path.joined(separator: " "))\"/>\n"
            }
            let ly = y + 14 + Double(index) * 16
            let lx = left + plotWidth + 12
            svg += "<line x1=\"\(f(lx))\" x2=\"\(f(lx + 18))\" y1=\"\(f(ly - 4))\" y2=\"\(f(ly - 4))\" "
                + "stroke=\"\(line.color)\" stroke-width=\"2\"/>\n"
            svg += "<text x=\"\(f(lx + 24))\" y=\"\(f(ly))\">\(escape(line.label))</text>\n"
        }
        svg += "</g>\n"
        return svg
    }

    /// 1, 2 or 5 times a power of ten, at least `raw`.
    static func niceStep(_ raw: Double) -> Double {
        guard raw > 0 else { return 1 }
        let magnitude = pow(10, floor(log10(raw)))
        for factor in [1.0, 2, 5, 10] where factor * magnitude >= raw { return factor * magnitude }
        return 10 * magnitude
    }

    static func label(_ value: Double) -> String {
        if value >= 1000 {
            let thousands = value / 1000
            return thousands == thousands.rounded() ? "\(Int(thousands))k" : String(format: "%.1fk", thousands)
        }
        if value >= 10 || value == value.rounded() { return String(format: "%.0f", value) }
        return String(format: "%g", value)
    }

    /// Escapes text for XML.
    public static func escape(_ text: String) -> String {
        var out = ""
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            default: out.append(character)
            }
        }
        return out
    }

    static func f(_ value: Double) -> String { String(format: "%.1f", value) }
    static func int(_ value: Double) -> String { String(Int(value)) }
}
