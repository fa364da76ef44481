public import Foundation

/// ISO 8601 timestamps in UTC with milliseconds, as on the wire: `2026-11-24T10:00:00.123Z`.
public enum Timestamp {
    private static let style = Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: .gmt)
    private static let wholeSeconds = Date.ISO8601FormatStyle(timeZone: .gmt)

    /// Formats a date, rounded to the nearest millisecond.
    public static func format(_ date: Date) -> String {
        // The style truncates, and a parsed `.002` is a binary fraction just below it about half the time: without
        // the half millisecond, every parse-and-format hop would lose a millisecond.
        date.addingTimeInterval(0.0005).formatted(style)
    }

    /// Parses a timestamp with or without fractional seconds; nil when it is not one.
    public static func parse(_ text: String) -> Date? {
        (try? style.parse(text)) ?? (try? wholeSeconds.parse(text))
    }
}
