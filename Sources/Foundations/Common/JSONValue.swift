import Foundation

/// A field of an event body, decoded with its exact type so validation can tell `"1"` from `1` from `true`.
///
/// Arrays and objects are recognised but not decoded: event fields are flat, and decoding nested values through
/// `Decodable` takes time that grows with the cube of their depth (a 1 kB body nested 500 deep took a second), which
/// would let any publisher stall a consumer.
enum JSONValue: Decodable, Equatable, Sendable {
    case null
    case bool(Bool)
    case integer(Int64)
    case number(Double)
    case string(String)
    /// An array; its elements are not decoded.
    case array
    /// An object; its members are not decoded.
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
