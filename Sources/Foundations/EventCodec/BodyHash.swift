/// A stable identifier for a message body, for messages that carry neither `event_id` nor `message_id`
/// (the original system's). Two deliveries of the same body get the same id, so they are recognised as one event.
enum BodyHash {
    /// 128-bit FNV-1a of the body, as 32 hex digits with a `body-` prefix.
    static func identifier(of body: [UInt8]) -> String {
        // FNV-1a, 128-bit parameters from the FNV reference.
        var hash: UInt128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d
        let prime: UInt128 = (1 << 88) + 0x13b
        for byte in body {
            hash ^= UInt128(byte)
            hash &*= prime
        }
        let hex = String(hash, radix: 16)
        return "body-" + String(repeating: "0", count: 32 - hex.count) + hex
    }
}
