import Foundation
import Testing

/// A small seeded fuzz loop: every run is reproducible from the seed it prints.
///
/// Each case gets its own generator, seeded from the run's seed and the case's index, so one case can be replayed
/// alone. Environment (all optional):
/// - `FUZZ_SEED`: the run's seed (decimal or `0x` hex); by default each fuzz test has a fixed seed of its own.
/// - `FUZZ_SCALE`: multiplies every case count (`make fuzz` raises it; `0.1` for a quick look).
/// - `FUZZ_CASE`: run only this case index, and print its input.
/// - `FUZZ_TRACE=1`: print each case index before running it, to find the case that crashed the process.
enum Fuzz {
    /// Runs `body` for `cases` cases of the fuzz test `name`.
    static func run(
        _ name: String, cases: Int, seed defaultSeed: UInt64, fileID: String = #fileID, function: String = #function,
        _ body: (inout FuzzCase) throws -> Void
    ) rethrows {
        let plan = Plan(name: name, cases: cases, defaultSeed: defaultSeed, test: Plan.testFilter(fileID, function))
        for index in plan.indices {
            var fuzzCase = plan.makeCase(index)
            let start = ContinuousClock.now
            try body(&fuzzCase)
            plan.noteDuration(since: start, of: fuzzCase)
        }
    }

    /// Runs the async `body` for `cases` cases of the fuzz test `name`.
    static func run(
        _ name: String, cases: Int, seed defaultSeed: UInt64, fileID: String = #fileID, function: String = #function,
        _ body: (inout FuzzCase) async throws -> Void
    ) async rethrows {
        let plan = Plan(name: name, cases: cases, defaultSeed: defaultSeed, test: Plan.testFilter(fileID, function))
        for index in plan.indices {
            var fuzzCase = plan.makeCase(index)
            let start = ContinuousClock.now
            try await body(&fuzzCase)
            plan.noteDuration(since: start, of: fuzzCase)
        }
    }

    private struct Plan {
        let name: String
        let seed: UInt64
        let indices: [Int]
        let trace: Bool
        let replay: Bool

        init(name: String, cases: Int, defaultSeed: UInt64, test: String) {
            let environment = ProcessInfo.processInfo.environment
            self.name = name
            self.seed = environment["FUZZ_SEED"].flatMap(Self.parseSeed) ?? defaultSeed
            let scale = environment["FUZZ_SCALE"].flatMap(Double.init) ?? 1
            let count = max(1, Int((Double(cases) * scale).rounded()))
            if let only = environment["FUZZ_CASE"].flatMap(Int.init) {
                self.indices = [only]
                self.replay = true
            } else {
                self.indices = Array(0..<count)
                self.replay = false
            }
            self.trace = environment["FUZZ_TRACE"] == "1" || self.replay
            let seedText = "0x" + String(self.seed, radix: 16)
            print(
                "fuzz \(name): \(self.indices.count) case(s), seed \(seedText)"
                    + " (replay one: FUZZ_SEED=\(seedText) FUZZ_CASE=<index> swift test --filter \(test))")
        }

        func makeCase(_ index: Int) -> FuzzCase {
            if self.trace { print("fuzz \(self.name): case \(index)") }
            return FuzzCase(name: self.name, seed: self.seed, index: index, printsInput: self.replay)
        }

        /// Prints a case that took long: slowness on some input is a finding too (a denial of service).
        func noteDuration(since start: ContinuousClock.Instant, of fuzzCase: FuzzCase) {
            let duration = start.duration(to: .now)
            if duration > .seconds(2) { print("fuzz \(self.name): slow case (\(duration)): \(fuzzCase)") }
        }

        /// `FuzzTests.<Suite>/<test>` for `swift test --filter`, from the caller's file (named after its suite).
        static func testFilter(_ fileID: String, _ function: String) -> String {
            let file = fileID.split(separator: "/").last.map { $0.replacingOccurrences(of: ".swift", with: "") } ?? ""
            return "FuzzTests.\(file)/\(function.prefix { $0 != "(" })"
        }

        static func parseSeed(_ text: String) -> UInt64? {
            if text.hasPrefix("0x") || text.hasPrefix("0X") { return UInt64(text.dropFirst(2), radix: 16) }
            return UInt64(text)
        }
    }
}

/// One fuzz case: its generator and how to name it in a failure.
struct FuzzCase: CustomStringConvertible {
    /// The fuzz test this case belongs to.
    let name: String
    /// The run's seed.
    let seed: UInt64
    /// The case's index in the run.
    let index: Int
    /// True when replaying one case (`FUZZ_CASE`): ``note(input:)`` prints the input.
    let printsInput: Bool
    /// This case's random numbers.
    var random: FuzzRandom

    init(name: String, seed: UInt64, index: Int, printsInput: Bool) {
        self.name = name
        self.seed = seed
        self.index = index
        self.printsInput = printsInput
        self.random = FuzzRandom(seed: seed ^ (UInt64(index) &* 0x9E37_79B9_7F4A_7C15))
    }

    var description: String {
        "fuzz \(self.name), FUZZ_SEED=0x\(String(self.seed, radix: 16)) FUZZ_CASE=\(self.index)"
    }

    /// Prints the input when replaying this case alone.
    func note(input: [UInt8]) {
        if self.printsInput { print("fuzz \(self.name): input \(preview(input, limit: 4096))") }
    }

    /// Prints what came out when replaying this case alone.
    func note(output: [UInt8]) {
        if self.printsInput { print("fuzz \(self.name): output \(preview(output, limit: 4096))") }
    }

    /// Prints the input when replaying this case alone.
    func note(input: String) {
        self.note(input: Array(input.utf8))
    }
}

/// SplitMix64: tiny, fast and good enough to drive generators; the same seed gives the same numbers everywhere.
struct FuzzRandom: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) {
        self.state = seed
    }

    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// True with probability `p`.
    mutating func chance(_ p: Double) -> Bool {
        Double.random(in: 0..<1, using: &self) < p
    }

    /// A random integer in `range`.
    mutating func int(_ range: ClosedRange<Int>) -> Int {
        Int.random(in: range, using: &self)
    }

    /// A random element of a non-empty collection.
    mutating func pick<C: Collection>(_ elements: C) -> C.Element {
        elements.randomElement(using: &self)!
    }

    /// A length that is usually small and sometimes large: most inputs stay cheap, a few probe the limits.
    mutating func length(upTo maximum: Int) -> Int {
        switch self.int(0...9) {
        case 0...5: return self.int(0...min(16, maximum))
        case 6...8: return self.int(0...min(256, maximum))
        default: return self.int(0...maximum)
        }
    }

    /// Random bytes, biased towards the bytes that matter to text parsers.
    mutating func bytes(count: Int, interesting: [UInt8] = []) -> [UInt8] {
        (0..<count).map { _ in
            if !interesting.isEmpty && self.chance(0.5) { return self.pick(interesting) }
            return UInt8.random(in: 0...255, using: &self)
        }
    }
}

/// Byte-level mutations of a valid input, in the manner of libFuzzer's mutators.
enum Mutation {
    /// Applies one to `count` random mutations to `bytes`.
    static func mutate(_ bytes: [UInt8], count: Int, using random: inout FuzzRandom, interesting: [UInt8]) -> [UInt8] {
        var result = bytes
        for _ in 0..<random.int(1...max(1, count)) {
            let position = result.isEmpty ? 0 : random.int(0...result.count - 1)
            switch random.int(0...7) {
            case 0 where !result.isEmpty:  // flip a bit
                result[position] ^= 1 << UInt8(random.int(0...7))
            case 1 where !result.isEmpty:  // replace a byte
                result[position] = random.chance(0.5) ? random.pick(interesting) : UInt8.random(in: 0...255, using: &random)
            case 2:  // insert bytes
                result.insert(contentsOf: random.bytes(count: random.int(1...8), interesting: interesting), at: position)
            case 3 where !result.isEmpty:  // delete a run
                let end = min(result.count, position + random.int(1...16))
                result.removeSubrange(position..<end)
            case 4 where !result.isEmpty:  // duplicate a chunk somewhere else
                let end = min(result.count, position + random.int(1...64))
                let chunk = Array(result[position..<end])
                result.insert(contentsOf: chunk, at: random.int(0...result.count))
            case 5:  // truncate
                result.removeSubrange(position..<result.count)
            case 6 where !result.isEmpty:  // swap two bytes
                result.swapAt(position, random.int(0...result.count - 1))
            default:  // insert an interesting byte repeated
                let byte = random.pick(interesting)
                result.insert(contentsOf: repeatElement(byte, count: random.int(1...32)), at: position)
            }
        }
        return result
    }
}

/// Bytes as readable text for failure messages: printable ASCII as is, everything else escaped, capped.
func preview(_ bytes: [UInt8], limit: Int = 300) -> String {
    var text = ""
    for byte in bytes.prefix(limit) {
        switch byte {
        case 0x20...0x7E where byte != UInt8(ascii: "\\"): text.unicodeScalars.append(Unicode.Scalar(byte))
        case UInt8(ascii: "\\"): text += "\\\\"
        case 0x0A: text += "\\n"
        case 0x0D: text += "\\r"
        default: text += "\\x" + (byte < 16 ? "0" : "") + String(byte, radix: 16)
        }
    }
    if bytes.count > limit { text += "... (\(bytes.count) bytes)" }
    return text
}
