/// A top-level field of an event body, with its exact JSON type so validation can tell `"1"` from `1` from `true`.
///
/// Arrays and objects are checked by ``EventScanner`` but not kept: event fields are flat.
enum JSONValue: Equatable, Sendable {
    case null
    case bool(Bool)
    /// A number whose value is a whole number that fits in `Int64` (`1`, `1.0` and `1e2` alike, as `JSONDecoder`
    /// read them).
    case integer(Int64)
    /// Any other (finite) number.
    case number(Double)
    case string(String)
    /// An array; its elements are validated, not kept.
    case array
    /// An object; its members are validated, not kept.
    case object
}
