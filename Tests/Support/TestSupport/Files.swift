import Foundation

/// The repository's root directory, found from this file's path.
public let repositoryRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<4 { url.deleteLastPathComponent() }  // Files.swift, TestSupport, Support, Tests
    return url.path
}()

/// A fresh temporary directory whose name starts with `prefix`.
public func temporaryDirectory(_ prefix: String = "test") throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}
