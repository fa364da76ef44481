import EventCodec
import Foundation
import Testing

struct TimestampTests {
    @Test(arguments: [
        "2026-02-30T10:00:00Z", "2026-02-29T00:00:00.000Z", "2100-02-29T00:00:00Z", "2026-04-31T00:00:00Z",
        "2026-00-10T00:00:00Z", "2026-13-10T00:00:00Z", "2026-01-00T00:00:00Z", "2026-01-32T00:00:00Z",
        "2026-01-01T24:00:00Z", "2026-01-01T23:60:00Z", "2026-01-01T23:59:60Z", "2026-01-01T23:59:60.500Z",
    ])
    func refusesDatesAndTimesThatDoNotExist(text: String) {
        #expect(Timestamp.parse(text) == nil)
    }

    @Test(arguments: [
        "2024-02-29T00:00:00Z", "2000-02-29T12:00:00.123Z", "2026-12-31T23:59:59.999Z", "2026-04-30T00:00:00Z",
        "1970-01-01T00:00:00Z",
    ])
    func acceptsDatesThatExist(text: String) throws {
        let date = try #require(Timestamp.parse(text))
        // What it names is what it parsed to: no rolling over into the next day or month.
        #expect(Timestamp.format(date).prefix(19) == text.prefix(19))
    }
}
