--
-- PostgreSQL database dump
--

\restrict hT8yopRrIzuSuNXeB0C7BOHZVShO5pcv9BmApPCaMdn3rKNJjN1npNRZoAj9wOT

-- Dumped from database version 15.18 (Debian 15.18-0+deb12u1)
-- Dumped by pg_dump version 15.18 (Debian 15.18-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: t; Type: TABLE; Schema: public; Owner: u
--

CREATE TABLE public.t (
    id integer NOT NULL,
    name text
);


ALTER TABLE public.t OWNER TO u;

--
-- Data for Name: t; Type: TABLE DATA; Schema: public; Owner: u
--

COPY public.t (id, name) FROM stdin;
1	n1
2	n2
3	n3
4	n4
5	n5
6	n6
7	n7
8	n8
9	n9
10	n10
11	n11
12	n12
13	n13
14	n14
15	n15
16	n16
17	n17
18	n18
19	n19
20	n20
21	n21
22	n22
23	n23
24	n24
25	n25
26	n26
27	n27
28	n28
29	n29
30	n30
31	n31
32	n32
33	n33
34	n34
35	n35
36	n36
37	n37
38	n38
39	n39
40	n40
41	n41
42	n42
43	n43
44	n44
45	n45
46	n46
47	n47
48	n48
49	n49
50	n50
\.


--
-- Name: t t_pkey; Type: CONSTRAINT; Schema: public; Owner: u
--

ALTER TABLE ONLY public.t
    ADD CONSTRAINT t_pkey PRIMARY KEY (id);


--
-- PostgreSQL database dump complete
--

\unrestrict hT8yopRrIzuSuNXeB0C7BOHZVShO5pcv9BmApPCaMdn3rKNJjN1npNRZoAj9wOT

