/// What the load client needs from an HTTP/1.1 response head: the status, how long the body is, and whether the
/// server will close the connection.
public struct ResponseHead: Sendable, Equatable {
    /// The status code.
    public var status: Int
    /// `Content-Length`, or nil when absent.
    public var contentLength: Int?
    /// `Transfer-Encoding: chunked` (not supported by the client: it reconnects).
    public var chunked: Bool
    /// `Connection: close`, or an HTTP/1.0 response without keep-alive.
    public var closes: Bool

    /// Parses the bytes of a head up to (not including) the blank line; nil when it is not an HTTP/1.x response.
    public static func parse(_ head: UnsafeRawBufferPointer) -> ResponseHead? {
        // "HTTP/1.1 201 ..."
        guard head.count >= 12, head[0] == UInt8(ascii: "H"), head[4] == UInt8(ascii: "/"),
            head[8] == UInt8(ascii: " ")
        else { return nil }
        var status = 0
        for index in 9..<12 {
            let digit = Int(head[index]) - 48
            guard (0...9).contains(digit) else { return nil }
            status = status * 10 + digit
        }
        var result = ResponseHead(status: status, contentLength: nil, chunked: false, closes: head[7] == UInt8(ascii: "0"))
        var lineStart = 0
        // Header lines after the status line.
        while let lineEnd = Self.index(of: 13, in: head, from: lineStart) {
            let next = lineEnd + 2
            lineStart = next
            guard next < head.count else { break }
            guard let colon = Self.index(of: UInt8(ascii: ":"), in: head, from: next) else { break }
            let end = Self.index(of: 13, in: head, from: next) ?? head.count
            guard colon < end else { continue }
            let name = Self.lowercased(head, next..<colon)
            var valueStart = colon + 1
            while valueStart < end, head[valueStart] == UInt8(ascii: " ") { valueStart += 1 }
            switch name {
            case "content-length":
                var length = 0
                for index in valueStart..<end {
                    let digit = Int(head[index]) - 48
                    guard (0...9).contains(digit) else { break }
                    length = length * 10 + digit
                }
                result.contentLength = length
            case "transfer-encoding":
                result.chunked = Self.lowercased(head, valueStart..<end).contains("chunked")
            case "connection":
                let value = Self.lowercased(head, valueStart..<end)
                if value.contains("close") { result.closes = true }
                if value.contains("keep-alive") { result.closes = false }
            default:
                break
            }
        }
        return result
    }

    /// Parses a head given as bytes (for tests and the readiness probe).
    public static func parse(_ bytes: [UInt8]) -> ResponseHead? {
        bytes.withUnsafeBytes { parse($0) }
    }

    private static func index(of byte: UInt8, in buffer: UnsafeRawBufferPointer, from start: Int) -> Int? {
        var index = start
        while index < buffer.count {
            if buffer[index] == byte { return index }
            index += 1
        }
        return nil
    }

    private static func lowercased(_ buffer: UnsafeRawBufferPointer, _ range: Range<Int>) -> String {
        String(decoding: buffer[range].map { ($0 >= 65 && $0 <= 90) ? $0 + 32 : $0 }, as: UTF8.self)
    }
}
