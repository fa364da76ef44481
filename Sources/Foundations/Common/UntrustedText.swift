public import Logging

/// Text that came from outside the process (message fields and headers, HTTP paths and headers, error texts that
/// quote them), made safe for one log line or a metric label.
///
/// Control, format and line-separator characters are escaped (`\n`, `\r`, `\t`, `\\`, else `\u{XX}`), so a value
/// cannot end the line and forge another, hide text with bidi overrides, or ring the terminal. The result is at
/// most ``maxBytes`` UTF-8 bytes of escaped text; a longer value is cut between two Unicode scalars and ends with
/// `…(N bytes)`, N being the original value's UTF-8 length. This is the one place that rule lives: every log line
/// or label that carries untrusted text goes through it.
public enum UntrustedText {
    /// Escaped bytes kept of a value before it is cut.
    public static let maxBytes = 200

    /// `text` escaped and bounded as described above.
    public static func escaped(_ text: some StringProtocol, maxBytes: Int = maxBytes) -> String {
        var result = ""
        var used = 0
        for scalar in text.unicodeScalars {
            let piece = escape(scalar)
            let size = piece.utf8.count
            if used + size > maxBytes {
                return result + "…(\(text.utf8.count) bytes)"
            }
            result += piece
            used += size
        }
        return result
    }

    private static func escape(_ scalar: Unicode.Scalar) -> String {
        switch scalar {
        case "\n": return "\\n"
        case "\r": return "\\r"
        case "\t": return "\\t"
        case "\\": return "\\\\"
        default: break
        }
        switch scalar.properties.generalCategory {
        case .control, .format, .lineSeparator, .paragraphSeparator, .surrogate, .privateUse, .unassigned:
            return "\\u{\(String(scalar.value, radix: 16, uppercase: true))}"
        default:
            return String(scalar)
        }
    }
}

extension Logger.MetadataValue {
    /// A metadata value from untrusted text, escaped and bounded by ``UntrustedText/escaped(_:maxBytes:)``.
    public static func untrusted(_ text: some StringProtocol) -> Logger.MetadataValue {
        .string(UntrustedText.escaped(text))
    }

    /// A metadata value from an error whose description may quote untrusted text.
    public static func untrusted(_ error: any Error) -> Logger.MetadataValue {
        .string(UntrustedText.escaped(String(describing: error)))
    }
}
