import Foundation
import Testing

/// The repository's own files, found from this source file's place in the tree
/// (`Tests/Unit/DeploymentFilesTests/`), so the tests read what is checked in.
enum RepositoryFiles {
    static let root: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()  // DeploymentFilesTests
        .deletingLastPathComponent()  // Unit
        .deletingLastPathComponent()  // Tests
        .deletingLastPathComponent()

    static func url(_ path: String) -> URL { root.appendingPathComponent(path) }

    static func text(_ path: String) throws -> String {
        try String(contentsOf: url(path), encoding: .utf8)
    }

    /// The names of the executable products that Package.swift declares.
    static func executableProducts() throws -> [String] {
        let manifest = try text("Package.swift")
        let pattern = try Regex(#"\.executable\(\s*name:\s*"([^"]+)""#)
        return manifest.matches(of: pattern).compactMap { $0.output[1].substring.map(String.init) }
    }

    /// The executables the production image does not ship, each with its reason.
    static let executablesNotShipped: [String: String] = [
        "user-events-bench": "a development tool that starts its own services and broker"
    ]

    /// The executable products the production image ships.
    static func shippedExecutables() throws -> [String] {
        try executableProducts().filter { executablesNotShipped[$0] == nil }
    }
}

/// Compose's variable interpolation (`${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?message}`,
/// `${VAR?message}`, `$$`), enough to read the deployment files the way `docker compose` does.
struct ComposeInterpolation {
    /// A required variable was not set.
    struct MissingVariable: Error, CustomStringConvertible {
        var name: String
        var message: String
        var description: String { "\(name): \(message)" }
    }

    var environment: [String: String]

    /// The variables the text requires (`:?` / `?`), in order of first use.
    static func requiredVariables(in text: String) throws -> [String] {
        var names: [String] = []
        for match in text.matches(of: try pattern()) where match.output[2].substring?.hasSuffix("?") == true {
            let name = String(match.output[1].substring ?? "")
            if !names.contains(name) { names.append(name) }
        }
        return names
    }

    private static func pattern() throws -> Regex<AnyRegexOutput> {
        try Regex(#"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}"#)
    }

    func apply(to text: String) throws -> String {
        var result = ""
        var rest = text[...]
        while let dollar = rest.firstIndex(of: "$") {
            result += rest[..<dollar]
            let tail = rest[dollar...]
            if tail.hasPrefix("$$") {
                result += "$"
                rest = tail.dropFirst(2)
            } else if let match = try Self.pattern().prefixMatch(in: tail) {
                result += try value(of: match)
                rest = tail[match.range.upperBound...]
            } else {
                result += "$"
                rest = tail.dropFirst()
            }
        }
        return result + rest
    }

    private func value(of match: Regex<AnyRegexOutput>.Match) throws -> String {
        let name = String(match.output[1].substring ?? "")
        let argument = String(match.output[3].substring ?? "")
        let value = environment[name]
        switch match.output[2].substring.map(String.init) {
        case nil:
            return value ?? ""
        case ":-":
            return (value?.isEmpty ?? true) ? argument : value ?? argument
        case "-":
            return value ?? argument
        case ":?":
            guard let value, !value.isEmpty else { throw MissingVariable(name: name, message: argument) }
            return value
        default:  // "?"
            guard let value else { throw MissingVariable(name: name, message: argument) }
            return value
        }
    }
}
