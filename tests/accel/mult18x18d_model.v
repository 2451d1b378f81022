// A behavioural model of the ECP5 sysDSP multiplier MULT18X18D, for simulation tests of
// spikeforge.hdl.accel.product.RegisteredProduct only: the subset that unit configures (input
// registers A and B and the output register on CLK0, CE0 enable, RST0 synchronous reset; no
// pipeline register, no C input, no shift-in sources). Other settings stop the simulation.
// P is the signed (SIGNEDA/SIGNEDB) or unsigned product of A and B.
module MULT18X18D(
    input A0, A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11, A12, A13, A14, A15, A16, A17,
    input B0, B1, B2, B3, B4, B5, B6, B7, B8, B9, B10, B11, B12, B13, B14, B15, B16, B17,
    input C0, C1, C2, C3, C4, C5, C6, C7, C8, C9, C10, C11, C12, C13, C14, C15, C16, C17,
    input SIGNEDA, SIGNEDB, SOURCEA, SOURCEB,
    input CLK0, CLK1, CLK2, CLK3, CE0, CE1, CE2, CE3, RST0, RST1, RST2, RST3,
    output P0, P1, P2, P3, P4, P5, P6, P7, P8, P9, P10, P11, P12, P13, P14, P15, P16, P17, P18, P19, P20, P21, P22, P23, P24, P25, P26, P27, P28, P29, P30, P31, P32, P33, P34, P35
);
    parameter REG_INPUTA_CLK = "NONE";
    parameter REG_INPUTA_CE = "CE0";
    parameter REG_INPUTA_RST = "RST0";
    parameter REG_INPUTB_CLK = "NONE";
    parameter REG_INPUTB_CE = "CE0";
    parameter REG_INPUTB_RST = "RST0";
    parameter REG_INPUTC_CLK = "NONE";
    parameter REG_PIPELINE_CLK = "NONE";
    parameter REG_OUTPUT_CLK = "NONE";
    parameter REG_OUTPUT_CE = "CE0";
    parameter REG_OUTPUT_RST = "RST0";
    parameter GSR = "ENABLED";
    parameter RESETMODE = "SYNC";

    wire [17:0] a = {A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2, A1, A0};
    wire [17:0] b = {B17, B16, B15, B14, B13, B12, B11, B10, B9, B8, B7, B6, B5, B4, B3, B2, B1, B0};
    reg [17:0] a_r = 0, b_r = 0;
    reg sa_r = 0, sb_r = 0;
    reg [35:0] p_r = 0;
    wire [17:0] a_in = REG_INPUTA_CLK == "CLK0" ? a_r : a;
    wire [17:0] b_in = REG_INPUTB_CLK == "CLK0" ? b_r : b;
    wire sa = REG_INPUTA_CLK == "CLK0" ? sa_r : SIGNEDA;
    wire sb = REG_INPUTB_CLK == "CLK0" ? sb_r : SIGNEDB;
    wire [35:0] a_x = {{18{sa & a_in[17]}}, a_in};
    wire [35:0] b_x = {{18{sb & b_in[17]}}, b_in};
    wire [35:0] product = a_x * b_x;
    wire [35:0] p = REG_OUTPUT_CLK == "CLK0" ? p_r : product;
    assign {P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24, P23, P22, P21, P20, P19, P18, P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3, P2, P1, P0} = p;

    initial begin
        if (REG_INPUTA_CLK != "NONE" && REG_INPUTA_CLK != "CLK0") $fatal(1, "model: REG_INPUTA_CLK");
        if (REG_INPUTB_CLK != "NONE" && REG_INPUTB_CLK != "CLK0") $fatal(1, "model: REG_INPUTB_CLK");
        if (REG_OUTPUT_CLK != "NONE" && REG_OUTPUT_CLK != "CLK0") $fatal(1, "model: REG_OUTPUT_CLK");
        if (REG_PIPELINE_CLK != "NONE" || REG_INPUTC_CLK != "NONE") $fatal(1, "model: pipeline/C registers");
        if (REG_INPUTA_CE != "CE0" || REG_INPUTB_CE != "CE0" || REG_OUTPUT_CE != "CE0") $fatal(1, "model: CE");
        if (RESETMODE != "SYNC") $fatal(1, "model: RESETMODE");
    end

    always @(posedge CLK0) begin
        if (RST0) begin
            a_r <= 0; b_r <= 0; sa_r <= 0; sb_r <= 0; p_r <= 0;
        end else if (CE0) begin
            a_r <= a; b_r <= b; sa_r <= SIGNEDA; sb_r <= SIGNEDB; p_r <= product;
        end
    end
endmodule
