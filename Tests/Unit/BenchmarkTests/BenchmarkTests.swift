@testable import Benchmark
import Foundation
import Testing

struct OpenLoopScheduleTests {
    @Test func requestsAreDueAtFixedIntervalsWhateverTheAnswers() {
        let schedule = OpenLoopSchedule(rate: 400, duration: 2.5)
        #expect(schedule.count == 1_000)
        #expect(schedule.offsetNanos(0) == 0)
        #expect(schedule.offsetNanos(1) == 2_500_000)
        #expect(schedule.offsetNanos(400) == 1_000_000_000)
        #expect(schedule.offsetNanos(999) == 2_497_500_000)
    }

    @Test func fractionalRatesRound() {
        let schedule = OpenLoopSchedule(rate: 3, duration: 1)
        #expect(schedule.count == 3)
        #expect(schedule.offsetNanos(1) == 333_333_333)
    }
}

struct RequestTemplateTests {
    @Test func sequenceRewritesTheEmailInPlace() throws {
        var template = RequestTemplate(port: 8000, emailPrefix: "bx-p01-w0002-")
        let length = template.bytes.count
        template.setSequence(42)
        let text = String(decoding: template.bytes, as: UTF8.self)
        #expect(text.hasPrefix("POST /users HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n"))
        #expect(text.hasSuffix(#"{"name":"Bench User","email":"bx-p01-w0002-0000000042@bench.example.com"}"#))
        template.setSequence(9_876_543_210)
        #expect(template.bytes.count == length)
        let body = try #require(text.components(separatedBy: "\r\n\r\n").last)
        #expect(text.contains("Content-Length: \(body.utf8.count)\r\n"))
        #expect(String(decoding: template.bytes, as: UTF8.self).contains("w0002-9876543210@"))
    }
}

struct ResponseHeadTests {
    @Test func parsesStatusLengthAndConnection() throws {
        let head = try #require(
            ResponseHead.parse(Array("HTTP/1.1 201 Created\r\ncontent-type: application/json\r\nContent-Length: 187".utf8)))
        #expect(head == ResponseHead(status: 201, contentLength: 187, chunked: false, closes: false))
        let closing = try #require(ResponseHead.parse(Array("HTTP/1.1 503 Service Unavailable\r\nConnection: close".utf8)))
        #expect(closing.status == 503)
        #expect(closing.closes)
        #expect(closing.contentLength == nil)
        let chunked = try #require(ResponseHead.parse(Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked".utf8)))
        #expect(chunked.chunked)
        #expect(ResponseHead.parse(Array("SSH-2.0-OpenSSH".utf8)) == nil)
    }
}

struct ParsingTests {
    @Test func isoTimestampsBecomeUnixMilliseconds() throws {
        #expect(parseISO8601Millis("1970-01-01T00:00:00.000Z") == 0)
        #expect(parseISO8601Millis("2026-11-24T10:00:00.123Z") == 1_795_514_400_123)
        #expect(parseISO8601Millis("2000-02-29T23:59:59Z") == 951_868_799_000)
        #expect(parseISO8601Millis("2026-11-24 10:00:00") == nil)
        let date = try #require(parseISO8601Millis("2024-03-01T12:34:56.789Z"))
        #expect(date == Date(timeIntervalSince1970: 1_709_296_496.789).timeIntervalSince1970 * 1000)
    }

    @Test func procFilesGiveCPUAndPeakMemory() {
        let stat = "1234 (a (weird) name) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 50 0 0 20 0 4 0 100 0 0"
        #expect(ProcessStats.cpuSeconds(statLine: stat, ticksPerSecond: 100) == 3.0)
        #expect(ProcessStats.peakRSSKiB(status: "Name:\tx\nVmPeak:\t  9999 kB\nVmHWM:\t   20480 kB\n") == 20_480)
    }

    @Test func latencySummaryUsesTheHistogram() {
        let summary = LatencySummary(microseconds: (1...1_000).map { UInt64($0) * 1_000 })
        #expect(summary.count == 1_000)
        #expect(abs(summary.p50 - 500) <= 1)
        #expect(abs(summary.p99 - 990) <= 1)
        #expect(summary.max == 1_000)
        #expect(LatencySummary(microseconds: []).count == 0)
    }
}

struct ReportWriterTests {
    func sampleReport() -> BenchmarkReport {
        var report = BenchmarkReport(startedAt: "2026-11-24T10:00:00Z", machine: ["cores": "2"], settings: [:])
        report.timeline = (0..<5).map { second in
            TimelinePoint(
                second: second, requests: 100 * second, errors: second == 3 ? 2 : 0, p50: 1.5, p99: 12,
                snapshots: 90 * second, lagP50: 20, cpu: ["user-service": 50, "order-service": 20],
                contextSwitches: ["user-service": 4_000, "order-service": 1_500])
        }
        report.spans = [PhaseSpan(name: "closed <16>", start: 0, end: 3), PhaseSpan(name: "open", start: 3, end: 5)]
        return report
    }

    @Test func chartIsOneSelfContainedSVG() {
        let svg = SVGChart.render(sampleReport())
        #expect(svg.hasPrefix("<svg xmlns=\"http://www.w3.org/2000/svg\""))
        #expect(svg.hasSuffix("</svg>\n"))
        #expect(svg.components(separatedBy: "<polyline").count - 1 >= 8)
        #expect(svg.contains("context switches per second"))
        #expect(svg.contains("closed &lt;16&gt;"))
        #expect(!svg.contains("<script") && !svg.contains("href"))
        #expect(!svg.contains("nan") && !svg.contains("inf"))
    }

    @Test func jsonRoundTripsAndTableShowsEveryPart() throws {
        var report = sampleReport()
        report.ceiling = CeilingReport(
            messages: 1_000, bodyBytes: 250, prefetch: 256, batchSize: 100, seconds: 0.5, messagesPerSecond: 2_000,
            publishPerSecond: 2_500, client: "rabbitmq-c", messagingMessagesPerSecond: 1_000, messagingFraction: 0.5,
            systemFraction: 0.25)
        report.costs = [
            PhaseCostReport(
                phase: "closed-1", seconds: 10, events: 1_000,
                processes: [ProcessCost(name: "user-service", cpuSeconds: 0.3, contextSwitches: 4_000,
                    cpuMsPerEvent: 0.3, switchesPerEvent: 4)],
                cpuMsPerEvent: 0.3, switchesPerEvent: 4, cpuPercent: 3)
        ]
        report.targets = Targets.evaluate(report)
        let decoded = try JSONDecoder().decode(BenchmarkReport.self, from: try report.json())
        #expect(decoded.timeline.count == 5)
        #expect(decoded.ceiling?.systemFraction == 0.25)
        let table = TableRenderer.render(report)
        #expect(table.contains("Broker ceiling"))
        #expect(table.contains("25.0 %"))
        #expect(table.contains("Messaging module") && table.contains("50.0 %"))
        #expect(table.contains("Cost per event") && table.contains("0.300/4.0"))
        #expect(table.contains("met    CPU per event, services summed, closed-1: 0.300 <= 0.40 ms"))
        #expect(decoded.costs == report.costs)
        #expect(decoded.targets == report.targets)
    }
}
