package ftpparse_test

import (
	"fmt"
	"net/netip"

	"github.com/ftpct/ftpct/ftpparse"
)

// A NAT gateway rewrites the private address a client announces to its public one.
func Example() {
	line := []byte("PORT 10,0,1,2,4,1\r\n")
	m, err := ftpparse.ParseClient(line)
	if err != nil || m.Kind == ftpparse.KindNone {
		fmt.Println("pass through:", err)
		return
	}
	public := netip.MustParseAddr("198.51.100.1")
	out := make([]byte, 0, len(line)+ftpparse.MaxArgLen)
	out = append(out, line[:m.Start]...)
	out = ftpparse.AppendArg(out, m, public, m.Port)
	out = append(out, line[m.End:]...)
	fmt.Printf("%v %v:%d -> %q (length %+d)\n", m.Kind, m.Addr, m.Port, out, len(out)-len(line))
	// Output: PORT 10.0.1.2:1025 -> "PORT 198,51,100,1,4,1\r\n" (length +4)
}

func ExampleParseServer() {
	for _, l := range []string{
		"227 Entering Passive Mode (192,168,1,10,195,80).\r\n",
		"229 Entering Extended Passive Mode (|||50000|)\r\n",
		"227-continued\r\n",
		"227 Entering Passive Mode (192,168,1,10,195,800).\r\n",
	} {
		m, err := ftpparse.ParseServer([]byte(l))
		fmt.Printf("%v addr=%v port=%d arg=%q err=%v\n", m.Kind, m.Addr, m.Port, l[m.Start:m.End], err)
	}
	// Output:
	// PASV addr=192.168.1.10 port=50000 arg="192,168,1,10,195,80" err=<nil>
	// EPSV addr=invalid IP port=50000 arg="|||50000|" err=<nil>
	// none addr=invalid IP port=0 arg="" err=<nil>
	// none addr=invalid IP port=0 arg="" err=parse PASV: number out of range: malformed announcement
}
