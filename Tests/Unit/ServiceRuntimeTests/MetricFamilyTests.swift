import Metrics
import MetricsTestKit
import Testing

@testable import ServiceRuntime

/// One series per label value, made once, with the fixed labels first.
struct MetricFamilyTests {
    @Test func eachValueHasOneSeriesCarryingTheFixedLabelsFirst() throws {
        let metrics = TestMetrics()
        let family = withMetricsFactory(metrics) {
            MetricFamily(counter: "events_dead_lettered_total", fixed: [("queue", "q")], varying: ["reason"])
        }
        family.labelled("invalid_json").increment()
        family.labelled("invalid_json").increment()
        family.labelled("max_attempts").increment()

        let series = metrics.counters(label: "events_dead_lettered_total")
        #expect(series.count == 2)
        let json = try metrics.expectCounter("events_dead_lettered_total", [("queue", "q"), ("reason", "invalid_json")])
        #expect(json.totalValue == 2)
        #expect(json.dimensions.map(\.0) == ["queue", "reason"])
        let attempts = try metrics.expectCounter("events_dead_lettered_total", [("queue", "q"), ("reason", "max_attempts")])
        #expect(attempts.totalValue == 1)
    }

    @Test func timersAreFamiliesToo() throws {
        let metrics = TestMetrics()
        let family = withMetricsFactory(metrics) {
            MetricFamily(timer: "http_request_duration_seconds", varying: ["method", "route"])
        }
        family.labelled("GET", "/users/{id}").record(duration: .milliseconds(3))
        family.labelled("GET", "/users/{id}").record(duration: .milliseconds(5))
        let timer = try metrics.expectTimer("http_request_duration_seconds", [("method", "GET"), ("route", "/users/{id}")])
        #expect(timer.values.count == 2)
    }
}
