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

    /// Parses a timestamp with or without fractional seconds; nil when it is not one, or names a date or time that
    /// does not exist (`2026-02-30`, `24:00`, second 60): the format style alone would roll such a date over.
    public static func parse(_ text: String) -> Date? {
        guard namesARealInstant(text) else { return nil }
        return (try? style.parse(text)) ?? (try? wholeSeconds.parse(text))
    }

    /// Whether the calendar fields of `text` (`YYYY-MM-DDTHH:MM:SS`, the prefix every accepted form starts with)
    /// exist in the proleptic Gregorian calendar.
    static func namesARealInstant(_ text: String) -> Bool {
        let bytes = Array(text.utf8.prefix(19))
        guard bytes.count == 19, bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-"),
            bytes[10] == UInt8(ascii: "T") || bytes[10] == UInt8(ascii: "t"),
            bytes[13] == UInt8(ascii: ":"), bytes[16] == UInt8(ascii: ":")
        else { return false }
        func number(_ range: Range<Int>) -> Int? {
            var value = 0
            for byte in bytes[range] {
                guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
                value = value * 10 + Int(byte - UInt8(ascii: "0"))
            }
            return value
        }
        guard let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
            let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19)
        else { return false }
        guard (1...12).contains(month), hour < 24, minute < 60, second < 60, day >= 1 else { return false }
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
        let days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
        return day <= days
    }
}
