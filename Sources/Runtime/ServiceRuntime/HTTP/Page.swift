public import HTTPServer
import NIOHTTP1

/// One page of a keyset-paginated list: `{"items": [...], "next": cursor or null}` (null on the last page).
public struct Page<Item: Encodable & Sendable>: Encodable, Sendable {
    /// The items of this page.
    public var items: [Item]
    /// The cursor to pass as `after` for the next page; nil on the last page.
    public var next: String?

    /// Creates a page.
    public init(items: [Item], next: String?) {
        self.items = items
        self.next = next
    }

    enum CodingKeys: CodingKey { case items, next }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(items, forKey: .items)
        try container.encode(next, forKey: .next)  // null, not absent
    }

    /// Page sizes the list endpoints accept.
    public static var sizes: ClosedRange<Int> { 1...500 }

    /// The `limit` query parameter: 1 to 500, default 50; anything else is a 422 naming it.
    public static func limit(_ request: HTTPRequest) throws -> Int {
        guard let text = request.query["limit"] else { return 50 }
        guard let limit = Int(text), sizes.contains(limit) else {
            throw HTTPError(
                .unprocessableEntity, error: "validation_failed",
                detail: "limit: must be a whole number from \(sizes.lowerBound) to \(sizes.upperBound)")
        }
        return limit
    }
}
