/// A scrape in the Prometheus text format (0.0.4), parsed into samples for tests to query.
public struct PrometheusText: Sendable, CustomStringConvertible {
    /// One line: a series and its value.
    public struct Sample: Sendable {
        /// The series' name, e.g. `http_requests_total` or `event_lag_seconds_bucket`.
        public var name: String
        /// Its labels, e.g. `["route": "/users", "status": "201"]`.
        public var labels: [String: String]
        /// Its value (`+Inf` and `-Inf` as infinities).
        public var value: Double
    }

    /// Every sample, in the order of the text.
    public let samples: [Sample]
    /// The text as scraped.
    public let description: String

    /// Parses `text`; comment lines (`# HELP`, `# TYPE`) are skipped, a malformed line is an error.
    public init(_ text: String) throws {
        description = text
        var samples: [Sample] = []
        for line in text.split(separator: "\n") where !line.hasPrefix("#") && !line.isEmpty {
            guard let sample = Self.parse(Substring(line)) else { throw TestFailure("not a sample line: \(line)") }
            samples.append(sample)
        }
        self.samples = samples
    }

    /// The values of the series named `name` whose labels include `labels`.
    public func values(_ name: String, _ labels: [String: String] = [:]) -> [Double] {
        samples.filter { sample in
            sample.name == name && labels.allSatisfy { sample.labels[$0.key] == $0.value }
        }.map(\.value)
    }

    /// The value of the one series named `name` with labels including `labels`; nil when there is none or several.
    public func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        let found = values(name, labels)
        return found.count == 1 ? found[0] : nil
    }

    /// `name{a="x",b="y"} 1.5` or `name 1.5`; label values may contain `}` and escaped quotes.
    private static func parse(_ line: Substring) -> Sample? {
        var rest = line[...]
        let name = rest.prefix { $0 != "{" && $0 != " " }
        guard !name.isEmpty else { return nil }
        rest = rest.dropFirst(name.count)
        var labels: [String: String] = [:]
        if rest.first == "{" {
            rest = rest.dropFirst()
            while rest.first != "}" {
                if rest.first == "," { rest = rest.dropFirst() }
                let key = rest.prefix { $0 != "=" }
                rest = rest.dropFirst(key.count)
                guard rest.hasPrefix("=\"") else { return nil }
                rest = rest.dropFirst(2)
                var value = ""
                while let character = rest.first, character != "\"" {
                    rest = rest.dropFirst()
                    if character == "\\", let escaped = rest.first {
                        rest = rest.dropFirst()
                        value.append(escaped == "n" ? "\n" : escaped)
                    } else {
                        value.append(character)
                    }
                }
                guard rest.first == "\"" else { return nil }
                rest = rest.dropFirst()
                labels[String(key)] = value
                guard !rest.isEmpty else { return nil }
            }
            rest = rest.dropFirst()
        }
        let fields = rest.split(separator: " ")
        guard let first = fields.first else { return nil }
        let value: Double? =
            switch first {
            case "+Inf": .infinity
            case "-Inf": -.infinity
            default: Double(first)
            }
        guard let value else { return nil }
        return Sample(name: String(name), labels: labels, value: value)
    }
}
