/// W3C Trace Context `traceparent` values (`00-<trace id>-<parent id>-<flags>`), carried from an HTTP request
/// into the event's AMQP headers so one user change can be followed through all three services' logs.
public enum TraceContext {
    /// The incoming value when it is a well-formed `traceparent`, else a new one.
    public static func continuing(_ incoming: String?) -> String {
        if let incoming, isValid(incoming) { return incoming.lowercased() }
        var random = SystemRandomNumberGenerator()
        let (high, low, parent) = (random.next() as UInt64, random.next() as UInt64, random.next() as UInt64)
        // Ids must not be all zeros; the chance is 2^-64, but the rule is absolute.
        return "00-\(hex(high | (low == 0 ? 1 : 0)))\(hex(low))-\(hex(parent == 0 ? 1 : parent))-01"
    }

    /// Whether `value` is a well-formed version-00 `traceparent` with non-zero ids.
    public static func isValid(_ value: String) -> Bool {
        let parts = value.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "00" else { return false }
        let hex = Set("0123456789abcdefABCDEF")
        for (part, length) in zip(parts, [2, 32, 16, 2]) {
            guard part.count == length, part.allSatisfy(hex.contains) else { return false }
        }
        return parts[1].contains { $0 != "0" } && parts[2].contains { $0 != "0" }
    }

    /// 16 lower-case hex digits.
    private static func hex(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}
