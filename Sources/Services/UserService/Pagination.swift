import Foundation
import HTTPServer
import NIOHTTP1

/// The user list's cursors: opaque strings naming the last position shown.
enum Pagination {
    /// The position an `after` cursor names (0 = from the start).
    static func position(_ cursor: String?) throws -> Int64 {
        guard let cursor else { return 0 }
        guard cursor.utf8.count <= UserValidation.cursorMaxBytes, let data = Data(base64URLEncoded: cursor), let text = String(data: data, encoding: .utf8),
            text.hasPrefix("seq:"), let position = Int64(text.dropFirst(4)), position >= 0
        else {
            throw HTTPError(.unprocessableEntity, error: "validation_failed", detail: "after: not a valid cursor")
        }
        return position
    }

    /// The cursor for a position.
    static func cursor(_ position: Int64) -> String {
        Data("seq:\(position)".utf8).base64URLEncodedString()
    }
}

extension Data {
    init?(base64URLEncoded text: String) {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        self.init(base64Encoded: base64)
    }

    func base64URLEncodedString() -> String {
        base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}
