/// One SQLite value, as stored in a column or bound to a `?` parameter.
public enum SQLiteValue: Sendable, Hashable {
    /// SQL NULL.
    case null
    /// A 64-bit signed integer.
    case integer(Int64)
    /// An IEEE double.
    case real(Double)
    /// UTF-8 text.
    case text(String)
    /// Raw bytes.
    case blob([UInt8])

    /// True for `.null`.
    public var isNull: Bool { self == .null }

    /// The text, or nil when the value is not `.text`.
    public var stringValue: String? {
        if case .text(let value) = self { value } else { nil }
    }

    /// The integer, or nil when the value is not `.integer`.
    public var int64Value: Int64? {
        if case .integer(let value) = self { value } else { nil }
    }

    /// The integer as `Int`, or nil when the value is not `.integer` or does not fit.
    public var intValue: Int? { int64Value.flatMap { Int(exactly: $0) } }

    /// The number as `Double` (`.real`, or `.integer` converted), or nil otherwise.
    public var doubleValue: Double? {
        switch self {
        case .real(let value): value
        case .integer(let value): Double(value)
        default: nil
        }
    }

    /// The bytes, or nil when the value is not `.blob`.
    public var blobValue: [UInt8]? {
        if case .blob(let value) = self { value } else { nil }
    }

    /// `.integer` as a Bool (non-zero is true), or nil otherwise.
    public var boolValue: Bool? { int64Value.map { $0 != 0 } }
}

/// A Swift value that can be bound to a `?` parameter: `String`, `Int`, `Int64`, `Double`, `Bool`, `[UInt8]`,
/// `SQLiteValue`, and optionals of those (nil binds NULL).
public protocol SQLiteBindable {
    /// The value to bind.
    var sqliteValue: SQLiteValue { get }
}

extension SQLiteValue: SQLiteBindable {
    /// The value itself.
    public var sqliteValue: SQLiteValue { self }
}

extension String: SQLiteBindable {
    /// `.text(self)`.
    public var sqliteValue: SQLiteValue { .text(self) }
}

extension Int: SQLiteBindable {
    /// `.integer(self)`.
    public var sqliteValue: SQLiteValue { .integer(Int64(self)) }
}

extension Int64: SQLiteBindable {
    /// `.integer(self)`.
    public var sqliteValue: SQLiteValue { .integer(self) }
}

extension Double: SQLiteBindable {
    /// `.real(self)`.
    public var sqliteValue: SQLiteValue { .real(self) }
}

extension Bool: SQLiteBindable {
    /// `.integer(1)` for true, `.integer(0)` for false.
    public var sqliteValue: SQLiteValue { .integer(self ? 1 : 0) }
}

extension Array: SQLiteBindable where Element == UInt8 {
    /// `.blob(self)`.
    public var sqliteValue: SQLiteValue { .blob(self) }
}

extension Optional: SQLiteBindable where Wrapped: SQLiteBindable {
    /// The wrapped value's, or `.null` for nil.
    public var sqliteValue: SQLiteValue { self?.sqliteValue ?? .null }
}

/// One result row: values by column name or by index.
///
/// Looking up a column name the query did not return is a programming error and traps, like an array index out of
/// range.
public struct Row: Sendable {
    /// The column names, in result order.
    public let columns: [String]
    /// The values, in result order.
    public let values: [SQLiteValue]

    init(columns: [String], values: [SQLiteValue]) {
        self.columns = columns
        self.values = values
    }

    /// The value of the column at `index` (0-based).
    public subscript(_ index: Int) -> SQLiteValue { values[index] }

    /// The value of the named column (the first one, if several have that name).
    public subscript(_ column: String) -> SQLiteValue {
        guard let index = columns.firstIndex(of: column) else {
            preconditionFailure("no column '\(column)' in row with columns \(columns)")
        }
        return values[index]
    }

    /// The named column as text, or nil when it is NULL or not text.
    public func string(_ column: String) -> String? { self[column].stringValue }

    /// The named column as `Int`, or nil when it is NULL or not an integer.
    public func int(_ column: String) -> Int? { self[column].intValue }

    /// The named column as `Int64`, or nil when it is NULL or not an integer.
    public func int64(_ column: String) -> Int64? { self[column].int64Value }

    /// The named column as `Double` (integers converted), or nil when it is NULL or not a number.
    public func double(_ column: String) -> Double? { self[column].doubleValue }

    /// The named column as bytes, or nil when it is NULL or not a blob.
    public func blob(_ column: String) -> [UInt8]? { self[column].blobValue }

    /// The named column as Bool (non-zero integer is true), or nil when it is NULL or not an integer.
    public func bool(_ column: String) -> Bool? { self[column].boolValue }
}
