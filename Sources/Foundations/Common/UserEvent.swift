public import Foundation

/// A change to a user, as it travels between the services (the wire format in the README).
///
/// `user_created` and `user_updated` carry the user's full state; `user_deleted` carries only the id.
/// Every event has an `eventID` (deduplication), a `version` (1 on create, +1 per change) and the time it happened.
public struct UserEvent: Sendable, Equatable {
    /// The event types this system publishes.
    public enum Kind: String, Sendable, CaseIterable {
        case created = "user_created"
        case updated = "user_updated"
        case deleted = "user_deleted"
    }

    /// What happened.
    public var kind: Kind
    /// The user it happened to.
    public var userID: String
    /// The user's name (created and updated events).
    public var name: String?
    /// The user's email address (created and updated events).
    public var email: String?
    /// Unique per event; consumers use it to recognise duplicates.
    public var eventID: String
    /// The user's version after this change; 1 when the message carried none (see ``isVersioned``).
    public var version: Int64
    /// Whether the message carried `version`. Messages in the original system's shape do not: they carry no order,
    /// and a consumer must not compare their version (always 1) with a real one.
    public var isVersioned: Bool
    /// When the change was committed by the user service.
    public var occurredAt: Date?

    /// Creates an event.
    public init(
        kind: Kind, userID: String, name: String? = nil, email: String? = nil,
        eventID: String, version: Int64, occurredAt: Date?, isVersioned: Bool = true
    ) {
        self.kind = kind
        self.userID = userID
        self.name = name
        self.email = email
        self.eventID = eventID
        self.version = version
        self.occurredAt = occurredAt
        self.isVersioned = isVersioned
    }
}

extension UserEvent {
    /// The JSON body of this event: a flat object, UTF-8.
    public func encodedBody() -> [UInt8] {
        // Encoding a struct of strings and integers cannot fail.
        Array(try! JSONEncoder().encode(WireEvent(self)))
    }

    /// Decodes and validates an event body.
    ///
    /// Accepts the original system's shape (only `event`, `user_id`, `name`, `email`): a missing `version` is 1 with
    /// ``isVersioned`` false, a missing `event_id` comes from `messageID` (the AMQP `message_id`) or else from a hash
    /// of the body.
    /// Unknown extra fields are ignored.
    public static func decode(body: [UInt8], messageID: String? = nil) throws(EventDecodingError) -> UserEvent {
        let object = try EventDecodingError.parseObject(body)
        let type = try object.requiredString("event")
        guard let kind = Kind(rawValue: type) else {
            throw EventDecodingError(field: "event", reason: "unknown event type '\(type)'")
        }
        let userID = try object.requiredString("user_id")
        guard !userID.isEmpty, userID.utf8.count <= 128 else {
            throw EventDecodingError(field: "user_id", reason: "must be 1 to 128 bytes")
        }
        var name: String?
        var email: String?
        if kind != .deleted {
            name = try object.requiredString("name")
            email = try object.requiredString("email")
        }
        let givenVersion = try object.optionalInteger("version")
        let version = givenVersion ?? 1
        guard version >= 1 else {
            throw EventDecodingError(field: "version", reason: "must be at least 1")
        }
        let eventID: String
        if let id = try object.optionalString("event_id"), !id.isEmpty {
            eventID = id
        } else if let messageID, !messageID.isEmpty {
            eventID = messageID
        } else {
            eventID = BodyHash.identifier(of: body)
        }
        var occurredAt: Date?
        if let text = try object.optionalString("occurred_at") {
            guard let date = Timestamp.parse(text) else {
                throw EventDecodingError(field: "occurred_at", reason: "not an ISO 8601 timestamp")
            }
            occurredAt = date
        }
        return UserEvent(
            kind: kind, userID: userID, name: name, email: email,
            eventID: eventID, version: version, occurredAt: occurredAt, isVersioned: givenVersion != nil)
    }

    /// The `event` field of a body, without validating the rest: what a router needs to pick a route.
    public static func eventType(of body: [UInt8]) throws(EventDecodingError) -> String {
        try EventDecodingError.parseObject(body).requiredString("event")
    }
}

/// Why a message body is not a valid event. `description` is what goes into the `x-error` header.
public struct EventDecodingError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The offending field, or nil when the body as a whole is wrong.
    public var field: String?
    /// What is wrong with it.
    public var reason: String

    /// Creates an error.
    public init(field: String?, reason: String) {
        self.field = field
        self.reason = reason
    }

    public var description: String {
        if let field { return "\(field): \(reason)" }
        return reason
    }

    fileprivate static func parseObject(_ body: [UInt8]) throws(EventDecodingError) -> [String: JSONValue] {
        do {
            return try JSONDecoder().decode([String: JSONValue].self, from: Data(body))
        } catch DecodingError.typeMismatch(_, let context) where context.codingPath.isEmpty {
            throw EventDecodingError(field: nil, reason: "body is not a JSON object")
        } catch DecodingError.valueNotFound(_, let context) where context.codingPath.isEmpty {
            throw EventDecodingError(field: nil, reason: "body is not a JSON object")
        } catch {
            throw EventDecodingError(field: nil, reason: "body is not valid JSON")
        }
    }
}

extension [String: JSONValue] {
    fileprivate func requiredString(_ key: String) throws(EventDecodingError) -> String {
        guard let value = self[key], value != .null else {
            throw EventDecodingError(field: key, reason: "field required")
        }
        guard case .string(let string) = value else {
            throw EventDecodingError(field: key, reason: "must be a string")
        }
        return string
    }

    fileprivate func optionalString(_ key: String) throws(EventDecodingError) -> String? {
        guard let value = self[key], value != .null else { return nil }
        guard case .string(let string) = value else {
            throw EventDecodingError(field: key, reason: "must be a string")
        }
        return string
    }

    fileprivate func optionalInteger(_ key: String) throws(EventDecodingError) -> Int64? {
        guard let value = self[key], value != .null else { return nil }
        guard case .integer(let number) = value else {
            throw EventDecodingError(field: key, reason: "must be an integer")
        }
        return number
    }
}

/// The body's field order follows the README's wire format.
private struct WireEvent: Encodable {
    let event: UserEvent

    init(_ event: UserEvent) { self.event = event }

    enum CodingKeys: String, CodingKey {
        case event, userID = "user_id", name, email, eventID = "event_id", version, occurredAt = "occurred_at"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(event.kind.rawValue, forKey: .event)
        try container.encode(event.userID, forKey: .userID)
        if event.kind != .deleted {
            try container.encode(event.name ?? "", forKey: .name)
            try container.encode(event.email ?? "", forKey: .email)
        }
        try container.encode(event.eventID, forKey: .eventID)
        // An event without a version keeps that shape when re-encoded: 1 would claim an order it does not have.
        if event.isVersioned { try container.encode(event.version, forKey: .version) }
        if let occurredAt = event.occurredAt {
            try container.encode(Timestamp.format(occurredAt), forKey: .occurredAt)
        }
    }
}
