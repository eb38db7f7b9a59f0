/* bcryptprimitives.dll for Wine 8.0, which lacks it: Rust's standard
 * library (inside wgpu-native) takes its random numbers from ProcessPrng
 * there, which Windows 10 and later have, and Go's runtime (1.24 and
 * later) will not start without it. Built by scripts/wine-check.sh for
 * the Wine prefix it uses and beside bt.exe, for the test only; never
 * shipped.
 *
 * It also makes one of Wine 8.0's answers the one Windows gives: asked
 * for a file information class it does not know (Go's os.RemoveAll asks
 * for FileDispositionInformationEx, class 64, Windows 10 1607's POSIX
 * delete), Wine's NtSetInformationFile answers STATUS_NOT_IMPLEMENTED,
 * where Windows answers STATUS_INVALID_INFO_CLASS, the answer on which Go
 * falls back to the older delete that Wine has. Without this every
 * RemoveAll of a directory with files in it fails there with "Invalid
 * function". The DLL is loaded before Go looks the function up (the
 * runtime loads it in osinit), so it hooks the executable's import of
 * GetProcAddress to hand out the translating NtSetInformationFile. */
#include <windows.h>
#include <string.h>

/* RtlGenRandom, exported by advapi32 under this name. */
BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length) {
	while (length > 0) {
		ULONG n = length > 0x40000000 ? 0x40000000 : (ULONG)length;
		if (!SystemFunction036(data, n))
			return FALSE;
		data += n;
		length -= n;
	}
	return TRUE;
}

#define STATUS_NOT_IMPLEMENTED ((LONG)0xC0000002)
#define STATUS_INVALID_INFO_CLASS ((LONG)0xC0000003)

typedef LONG(WINAPI *setInfoFn)(HANDLE, PVOID, PVOID, ULONG, ULONG);
typedef FARPROC(WINAPI *getProcFn)(HMODULE, LPCSTR);

static setInfoFn realSetInfo;
static getProcFn realGetProc;

static LONG WINAPI setInfo(HANDLE h, PVOID iosb, PVOID info, ULONG n, ULONG class) {
	LONG s = realSetInfo(h, iosb, info, n, class);
	return s == STATUS_NOT_IMPLEMENTED ? STATUS_INVALID_INFO_CLASS : s;
}

static FARPROC WINAPI getProc(HMODULE m, LPCSTR name) {
	FARPROC p = realGetProc(m, name);
	if (p && HIWORD((ULONG_PTR)name) && strcmp(name, "NtSetInformationFile") == 0 && m == GetModuleHandleA("ntdll.dll")) {
		realSetInfo = (setInfoFn)p;
		return (FARPROC)setInfo;
	}
	return p;
}

/* hook replaces the executable's imports of kernel32's GetProcAddress. */
static void hook(void) {
	BYTE *base = (BYTE *)GetModuleHandleA(NULL);
	IMAGE_NT_HEADERS *nt = (IMAGE_NT_HEADERS *)(base + ((IMAGE_DOS_HEADER *)base)->e_lfanew);
	IMAGE_DATA_DIRECTORY dir = nt->OptionalHeader.DataDirectory[IMAGE_DIRECTORY_ENTRY_IMPORT];
	realGetProc = (getProcFn)GetProcAddress(GetModuleHandleA("kernel32.dll"), "GetProcAddress");
	if (dir.VirtualAddress == 0)
		return;
	for (IMAGE_IMPORT_DESCRIPTOR *d = (IMAGE_IMPORT_DESCRIPTOR *)(base + dir.VirtualAddress); d->Name; d++) {
		if (_stricmp((char *)(base + d->Name), "kernel32.dll") != 0 || d->OriginalFirstThunk == 0)
			continue;
		IMAGE_THUNK_DATA *names = (IMAGE_THUNK_DATA *)(base + d->OriginalFirstThunk);
		IMAGE_THUNK_DATA *slots = (IMAGE_THUNK_DATA *)(base + d->FirstThunk);
		for (; names->u1.AddressOfData; names++, slots++) {
			if (IMAGE_SNAP_BY_ORDINAL(names->u1.Ordinal))
				continue;
			IMAGE_IMPORT_BY_NAME *ibn = (IMAGE_IMPORT_BY_NAME *)(base + names->u1.AddressOfData);
			if (strcmp((char *)ibn->Name, "GetProcAddress") != 0)
				continue;
			DWORD old;
			if (VirtualProtect(&slots->u1.Function, sizeof slots->u1.Function, PAGE_READWRITE, &old)) {
				slots->u1.Function = (ULONG_PTR)getProc;
				VirtualProtect(&slots->u1.Function, sizeof slots->u1.Function, old, &old);
			}
		}
	}
}

BOOL WINAPI DllMain(HINSTANCE dll, DWORD reason, LPVOID reserved) {
	if (reason == DLL_PROCESS_ATTACH)
		hook();
	return TRUE;
}
