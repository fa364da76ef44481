import HTTPServer
import NIOHTTP1

/// The rules for a user's fields, shared by create (and later update).
enum UserValidation {
    /// A name: surrounding whitespace trimmed, then 1 to 100 characters.
    static func name(_ raw: String) throws(HTTPError) -> String {
        let name = raw.trimmingWhitespace()
        guard !name.isEmpty else { throw invalid("name", "must not be empty") }
        guard name.count <= 100 else { throw invalid("name", "must be at most 100 characters") }
        guard !name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw invalid("name", "must not contain control characters")
        }
        return name
    }

    /// A plausible email address: `local@domain.tld`, at most 254 characters, no spaces or control characters
    /// (surrounding whitespace included: an address is taken as typed, never silently changed).
    static func email(_ email: String) throws(HTTPError) -> String {
        guard !email.isEmpty else { throw invalid("email", "must not be empty") }
        guard email.utf8.count <= 254 else { throw invalid("email", "must be at most 254 characters") }
        let parts = email.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, let local = parts.first, let domain = parts.last,
            !local.isEmpty, local.utf8.count <= 64,
            !email.unicodeScalars.contains(where: { $0.properties.isWhitespace || $0.value < 0x20 || $0 == "\u{7F}" })
        else {
            throw invalid("email", "is not a valid email address")
        }
        let labels = domain.split(separator: ".", omittingEmptySubsequences: false)
        guard labels.count >= 2,
            labels.allSatisfy({ !$0.isEmpty && $0.utf8.count <= 63 && !$0.hasPrefix("-") && !$0.hasSuffix("-") }),
            domain.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "." })
        else {
            throw invalid("email", "is not a valid email address")
        }
        return email
    }

    static func invalid(_ field: String, _ problem: String) -> HTTPError {
        HTTPError(.unprocessableEntity, error: "validation_failed", detail: "\(field): \(problem)")
    }
}

extension String {
    func trimmingWhitespace() -> String {
        var scalars = Substring(self).unicodeScalars
        while let first = scalars.first, first.properties.isWhitespace { scalars.removeFirst() }
        while let last = scalars.last, last.properties.isWhitespace { scalars.removeLast() }
        return String(scalars)
    }
}
