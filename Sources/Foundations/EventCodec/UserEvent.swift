public import Foundation

/// A change to a user, as it travels between the services (the wire format in docs/API.md).
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
    /// The JSON body of this event: a flat object, UTF-8, with the fields in the order docs/API.md gives.
    public func encodedBody() -> [UInt8] {
        var writer = EventWriter()
        writer.member("event", string: kind.rawValue)
        writer.member("user_id", string: userID)
        if kind != .deleted {
            writer.member("name", string: name ?? "")
            writer.member("email", string: email ?? "")
        }
        writer.member("event_id", string: eventID)
        // An event without a version keeps that shape when re-encoded: 1 would claim an order it does not have.
        if isVersioned { writer.member("version", integer: version) }
        if let occurredAt { writer.member("occurred_at", string: Timestamp.format(occurredAt)) }
        return writer.finish()
    }

    /// Decodes and validates an event body.
    ///
    /// Accepts the original system's shape (only `event`, `user_id`, `name`, `email`): a missing `version` is 1 with
    /// ``isVersioned`` false, a missing `event_id` comes from `messageID` (the AMQP `message_id`) or else from a hash
    /// of the body.
    /// Unknown extra fields are ignored; a known field given twice is an error.
    public static func decode(body: [UInt8], messageID: String? = nil) throws(EventDecodingError) -> UserEvent {
        let fields = try EventFields.scan(body)
        let type = try fields.eventType()
        guard let kind = Kind(rawValue: type) else {
            throw EventDecodingError(field: "event", reason: "unknown event type '\(type)'")
        }
        return try event(kind, fields, body: body, messageID: messageID)
    }

    /// The `event` field of a body, without validating the rest: what a router needs to pick a route.
    public static func eventType(of body: [UInt8]) throws(EventDecodingError) -> String {
        try EventFields.scan(body).eventType()
    }

    /// A body read once for routing: its `event` type and, when that type is one of ``Kind``, the validated event.
    public struct Envelope: Sendable {
        /// The body's `event` field.
        public var type: String
        /// The event, when ``type`` is one of ``Kind``; nil for other types, whose other fields are not validated.
        public var event: UserEvent?
    }

    /// Reads a body once: its event type, and the validated event when the type is one of ``Kind``.
    ///
    /// Throws what ``eventType(of:)`` throws, and for a known type what ``decode(body:messageID:)`` throws.
    public static func envelope(of body: [UInt8], messageID: String? = nil) throws(EventDecodingError) -> Envelope {
        let fields = try EventFields.scan(body)
        let type = try fields.eventType()
        guard let kind = Kind(rawValue: type) else { return Envelope(type: type, event: nil) }
        return Envelope(type: type, event: try event(kind, fields, body: body, messageID: messageID))
    }

    /// Validates the fields of an event of a known kind, in a fixed order, so a body gets the same error every time.
    private static func event(
        _ kind: Kind, _ fields: EventFields, body: [UInt8], messageID: String?
    ) throws(EventDecodingError) -> UserEvent {
        let userID = try fields.requiredString(.userID)
        guard !userID.isEmpty, userID.utf8.count <= EventLimits.userIDBytes else {
            throw EventDecodingError(field: "user_id", reason: "must be 1 to \(EventLimits.userIDBytes) bytes")
        }
        var name: String?
        var email: String?
        if kind != .deleted {
            name = try fields.requiredString(.name, maxBytes: EventLimits.nameBytes)
            email = try fields.requiredString(.email, maxBytes: EventLimits.emailBytes)
        }
        let givenVersion = try fields.optionalInteger(.version)
        let version = givenVersion ?? 1
        guard version >= 1 else {
            throw EventDecodingError(field: "version", reason: "must be at least 1")
        }
        let eventID: String
        if let id = try fields.optionalString(.eventID, maxBytes: EventLimits.eventIDBytes), !id.isEmpty {
            eventID = id
        } else if let messageID, !messageID.isEmpty, messageID.utf8.count <= EventLimits.eventIDBytes {
            eventID = messageID
        } else {
            eventID = BodyHash.identifier(of: body)
        }
        var occurredAt: Date?
        if let text = try fields.optionalString(.occurredAt) {
            guard let date = Timestamp.parse(text) else {
                throw EventDecodingError(field: "occurred_at", reason: "not an ISO 8601 timestamp")
            }
            occurredAt = date
        }
        return UserEvent(
            kind: kind, userID: userID, name: name, email: email,
            eventID: eventID, version: version, occurredAt: occurredAt, isVersioned: givenVersion != nil)
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
}

extension EventFields {
    /// The value of a field given at most once; a repeated field is an error.
    fileprivate func value(_ field: Field) throws(EventDecodingError) -> JSONValue? {
        switch self[field] {
        case .absent: return nil
        case .present(let value): return value == .null ? nil : value
        case .repeated: throw EventDecodingError(field: field.key, reason: "given more than once")
        }
    }

    fileprivate func requiredString(_ field: Field, maxBytes: Int = .max) throws(EventDecodingError) -> String {
        guard let string = try optionalString(field, maxBytes: maxBytes) else {
            throw EventDecodingError(field: field.key, reason: "field required")
        }
        return string
    }

    fileprivate func optionalString(_ field: Field, maxBytes: Int = .max) throws(EventDecodingError) -> String? {
        guard let value = try value(field) else { return nil }
        guard case .string(let string) = value else {
            throw EventDecodingError(field: field.key, reason: "must be a string")
        }
        guard string.utf8.count <= maxBytes else {
            throw EventDecodingError(field: field.key, reason: "must be at most \(maxBytes) bytes (UTF-8)")
        }
        return string
    }

    /// The `event` field: a string of at most ``EventLimits/eventTypeBytes``.
    fileprivate func eventType() throws(EventDecodingError) -> String {
        try requiredString(.event, maxBytes: EventLimits.eventTypeBytes)
    }

    fileprivate func optionalInteger(_ field: Field) throws(EventDecodingError) -> Int64? {
        guard let value = try value(field) else { return nil }
        guard case .integer(let number) = value else {
            throw EventDecodingError(field: field.key, reason: "must be an integer")
        }
        return number
    }
}
