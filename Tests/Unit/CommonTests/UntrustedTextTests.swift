import Common
import Logging
import Testing

struct UntrustedTextTests {
    @Test func lineBreaksAndControlCharactersAreEscaped() {
        let forged = "e1\n2026-01-01T00:00:00+0000 error order-service : forged line\r\u{1B}[31m\u{7}"
        let escaped = UntrustedText.escaped(forged)
        #expect(!escaped.contains("\n"))
        #expect(!escaped.contains("\r"))
        #expect(escaped.unicodeScalars.allSatisfy { $0.value >= 0x20 && $0.value != 0x7F })
        #expect(escaped.hasPrefix("e1\\n2026-01-01"))
        #expect(escaped.hasSuffix("\\r\\u{1B}[31m\\u{7}"))
    }

    @Test func unicodeLineSeparatorsAndBidiOverridesAreEscaped() {
        let escaped = UntrustedText.escaped("a\u{2028}b\u{2029}c\u{85}d\u{202E}e\u{200B}f")
        #expect(escaped == "a\\u{2028}b\\u{2029}c\\u{85}d\\u{202E}e\\u{200B}f")
    }

    @Test func backslashIsEscapedSoEscapesCannotBeFaked() {
        #expect(UntrustedText.escaped(#"a\nb"#) == #"a\\nb"#)
    }

    @Test func ordinaryTextIsUnchanged() {
        let text = "user_created 0b5c-ü-名前 Zoë"
        #expect(UntrustedText.escaped(text) == text)
    }

    @Test func longValuesAreCutInBytesAndSayTheirSize() {
        let long = String(repeating: "x", count: 140_000)
        let escaped = UntrustedText.escaped(long)
        #expect(escaped == String(repeating: "x", count: 200) + "…(140000 bytes)")

        // One character of 600 kB (a letter and 300,000 combining marks) is cut in bytes, not characters.
        let marks = "a" + String(repeating: "\u{301}", count: 300_000)
        let cut = UntrustedText.escaped(marks)
        #expect(cut.utf8.count <= 200 + "…(600001 bytes)".utf8.count)
        #expect(cut.hasSuffix("…(600001 bytes)"))

        // Escapes count in the bound and are never split.
        let newlines = UntrustedText.escaped(String(repeating: "\n", count: 500))
        #expect(newlines == String(repeating: "\\n", count: 100) + "…(500 bytes)")
        let wide = UntrustedText.escaped(String(repeating: "\u{1}", count: 100))
        #expect(wide.hasPrefix(String(repeating: "\\u{1}", count: 40) + "…"))
    }

    @Test func metadataValueUsesTheSameRule() {
        let value = Logger.MetadataValue.untrusted("a\nb")
        #expect(value.description == "a\\nb")
        struct Failure: Error, CustomStringConvertible { var description: String { "bad 'x\ny'" } }
        #expect(Logger.MetadataValue.untrusted(Failure()).description == "bad 'x\\ny'")
    }
}
