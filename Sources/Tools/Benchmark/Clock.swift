import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Nanoseconds on the monotonic clock: what every latency and schedule in the benchmark is measured with.
public func monotonicNanos() -> UInt64 {
    var spec = timespec()
    clock_gettime(CLOCK_MONOTONIC, &spec)
    return UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec)
}

/// Sleeps the calling thread until the monotonic clock reads `deadline` (nanoseconds); returns at once when it
/// already has.
func sleepUntil(monotonicNanos deadline: UInt64) {
    var spec = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
    while clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &spec, nil) == EINTR {}
}

/// Ties the monotonic clock to wall-clock time once, so monotonic instants can be compared with the services'
/// ISO 8601 timestamps (same machine, same realtime clock).
public struct ClockAnchor: Sendable {
    /// Monotonic nanoseconds at the anchor.
    public let monotonic: UInt64
    /// Unix time in milliseconds at the anchor.
    public let unixMillis: Double

    /// Anchors now.
    public init() {
        monotonic = monotonicNanos()
        unixMillis = Date().timeIntervalSince1970 * 1000
    }

    /// Creates an anchor from known readings (for tests).
    public init(monotonic: UInt64, unixMillis: Double) {
        self.monotonic = monotonic
        self.unixMillis = unixMillis
    }

    /// Unix milliseconds at monotonic instant `nanos`.
    public func unixMillis(atMonotonic nanos: UInt64) -> Double {
        unixMillis + (Double(nanos) - Double(monotonic)) / 1e6
    }

    /// Seconds since the anchor of monotonic instant `nanos`.
    public func seconds(atMonotonic nanos: UInt64) -> Double {
        (Double(nanos) - Double(monotonic)) / 1e9
    }
}

/// Parses `2026-11-24T10:00:00.123Z` (UTC, optional fraction) to Unix milliseconds without Foundation's
/// formatters, which are slow for a hundred thousand rows. Returns nil for anything else.
public func parseISO8601Millis(_ text: String) -> Double? {
    var utf8 = Array(text.utf8)
    guard utf8.count >= 20, utf8.last == UInt8(ascii: "Z") else { return nil }
    utf8.removeLast()
    func number(_ range: Range<Int>) -> Int? {
        var value = 0
        for index in range {
            let digit = Int(utf8[index]) - 48
            guard (0...9).contains(digit) else { return nil }
            value = value * 10 + digit
        }
        return value
    }
    guard utf8[4] == UInt8(ascii: "-"), utf8[7] == UInt8(ascii: "-"), utf8[10] == UInt8(ascii: "T"),
        utf8[13] == UInt8(ascii: ":"), utf8[16] == UInt8(ascii: ":"),
        let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
        let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19),
        (1...12).contains(month), (1...31).contains(day)
    else { return nil }
    var fraction = 0.0
    if utf8.count > 19 {
        guard utf8[19] == UInt8(ascii: "."), utf8.count > 20, let digits = number(20..<utf8.count) else { return nil }
        fraction = Double(digits) / pow(10, Double(utf8.count - 20))
    }
    // Days from the civil date (proleptic Gregorian), after Howard Hinnant's algorithm.
    let y = month <= 2 ? year - 1 : year
    let era = (y >= 0 ? y : y - 399) / 400
    let yearOfEra = y - era * 400
    let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
    let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
    let days = era * 146_097 + dayOfEra - 719_468
    let seconds = Double(days * 86_400 + hour * 3_600 + minute * 60 + second) + fraction
    return seconds * 1000
}
