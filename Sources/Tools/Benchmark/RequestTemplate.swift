/// A complete `POST /users` request whose email carries a fixed-width sequence number, so each request is unique
/// while the bytes (and `Content-Length`) are built once: sending request *n* only rewrites ten digits in place.
public struct RequestTemplate: Sendable {
    /// The request bytes, with the sequence number last set.
    public private(set) var bytes: [UInt8]
    /// Where the ten sequence digits start in ``bytes``.
    public let sequenceOffset: Int
    /// Digits of the sequence number.
    public static let sequenceDigits = 10

    /// Builds the request for `emailPrefix` (unique per run, phase and connection), e.g. `b1a2b3c-p01-w0003-`.
    public init(port: Int, emailPrefix: String) {
        let placeholder = String(repeating: "0", count: Self.sequenceDigits)
        let bodyHead = #"{"name":"Bench User","email":""# + emailPrefix
        let body = bodyHead + placeholder + #"@bench.example.com"}"#
        let head =
            "POST /users HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nContent-Type: application/json\r\n"
            + "Content-Length: \(body.utf8.count)\r\n\r\n"
        bytes = Array((head + body).utf8)
        sequenceOffset = head.utf8.count + bodyHead.utf8.count
    }

    /// Writes `sequence` (modulo 10^10) into the email.
    public mutating func setSequence(_ sequence: UInt64) {
        var value = sequence
        bytes.withUnsafeMutableBufferPointer { buffer in
            for index in stride(from: sequenceOffset + Self.sequenceDigits - 1, through: sequenceOffset, by: -1) {
                buffer[index] = UInt8(ascii: "0") + UInt8(value % 10)
                value /= 10
            }
        }
    }

    /// A bodiless `GET` for `path`.
    public static func get(_ path: String, port: Int) -> [UInt8] {
        Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\n\r\n".utf8)
    }
}
