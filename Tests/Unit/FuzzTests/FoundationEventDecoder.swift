import Foundation

@testable import EventCodec

/// The event decoder as it was before `UserEvent` read bodies itself: `JSONDecoder` into a dictionary of typed
/// values, then the same validation. Kept here only, as the reference the differential fuzz test compares with.
enum FoundationEventDecoder {
    /// A top-level field with its JSON type, read through `Decodable`.
    enum Value: Decodable, Equatable {
        case null
        case bool(Bool)
        case integer(Int64)
        case number(Double)
        case string(String)
        case array
        case object

        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if container.decodeNil() {
                self = .null
            } else if let value = try? container.decode(Bool.self) {
                self = .bool(value)
            } else if let value = try? container.decode(Int64.self) {
                self = .integer(value)
            } else if let value = try? container.decode(Double.self) {
                self = .number(value)
            } else if let value = try? container.decode(String.self) {
                self = .string(value)
            } else if (try? decoder.unkeyedContainer()) != nil {
                self = .array
            } else {
                _ = try decoder.container(keyedBy: AnyKey.self)
                self = .object
            }
        }

        private struct AnyKey: CodingKey {
            var stringValue: String
            var intValue: Int? { nil }
            init(stringValue: String) { self.stringValue = stringValue }
            init?(intValue: Int) { nil }
        }
    }

    /// The body's top-level fields, or the body-level error.
    static func fields(_ body: [UInt8]) -> Result<[String: Value], EventDecodingError> {
        do {
            return .success(try JSONDecoder().decode([String: Value].self, from: Data(body)))
        } catch DecodingError.typeMismatch(_, let context) where context.codingPath.isEmpty {
            return .failure(EventDecodingError(field: nil, reason: "body is not a JSON object"))
        } catch DecodingError.valueNotFound(_, let context) where context.codingPath.isEmpty {
            return .failure(EventDecodingError(field: nil, reason: "body is not a JSON object"))
        } catch {
            return .failure(EventDecodingError(field: nil, reason: "body is not valid JSON"))
        }
    }

    /// `UserEvent.decode(body:messageID:)` as it was.
    static func decode(body: [UInt8], messageID: String?) -> Result<UserEvent, EventDecodingError> {
        Result { () throws(EventDecodingError) in
            let object = try fields(body).get()
            let type = try requiredString(object, "event", maxBytes: EventLimits.eventTypeBytes)
            guard let kind = UserEvent.Kind(rawValue: type) else {
                throw EventDecodingError(field: "event", reason: "unknown event type '\(type)'")
            }
            let userID = try requiredString(object, "user_id")
            guard !userID.isEmpty, userID.utf8.count <= EventLimits.userIDBytes else {
                throw EventDecodingError(field: "user_id", reason: "must be 1 to \(EventLimits.userIDBytes) bytes")
            }
            var name: String?
            var email: String?
            if kind != .deleted {
                name = try requiredString(object, "name", maxBytes: EventLimits.nameBytes)
                email = try requiredString(object, "email", maxBytes: EventLimits.emailBytes)
            }
            let givenVersion = try optionalInteger(object, "version")
            let version = givenVersion ?? 1
            guard version >= 1 else { throw EventDecodingError(field: "version", reason: "must be at least 1") }
            let eventID: String
            if let id = try optionalString(object, "event_id", maxBytes: EventLimits.eventIDBytes), !id.isEmpty {
                eventID = id
            } else if let messageID, !messageID.isEmpty, messageID.utf8.count <= EventLimits.eventIDBytes {
                eventID = messageID
            } else {
                eventID = BodyHash.identifier(of: body)
            }
            var occurredAt: Date?
            if let text = try optionalString(object, "occurred_at") {
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

    private static func requiredString(
        _ object: [String: Value], _ key: String, maxBytes: Int = .max
    ) throws(EventDecodingError) -> String {
        guard let value = object[key], value != .null else {
            throw EventDecodingError(field: key, reason: "field required")
        }
        guard case .string(let string) = value else { throw EventDecodingError(field: key, reason: "must be a string") }
        guard string.utf8.count <= maxBytes else {
            throw EventDecodingError(field: key, reason: "must be at most \(maxBytes) bytes (UTF-8)")
        }
        return string
    }

    private static func optionalString(
        _ object: [String: Value], _ key: String, maxBytes: Int = .max
    ) throws(EventDecodingError) -> String? {
        guard object[key] != nil, object[key] != .null else { return nil }
        return try requiredString(object, key, maxBytes: maxBytes)
    }

    private static func optionalInteger(_ object: [String: Value], _ key: String) throws(EventDecodingError) -> Int64? {
        guard let value = object[key], value != .null else { return nil }
        guard case .integer(let number) = value else {
            throw EventDecodingError(field: key, reason: "must be an integer")
        }
        return number
    }
}
