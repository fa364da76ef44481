import ArgumentParser
import ServiceRuntime

@main
enum Main {
    static func main() async {
        await RequeueDeadLettersCommand.main()
    }
}
