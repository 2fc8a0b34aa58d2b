package process

func runTestServer(args []string) int { return 2 }
