import ArgumentParser

@main
enum Main {
    static func main() async {
        await RequeueDeadLettersCommand.main()
    }
}
